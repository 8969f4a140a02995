/* state.c - RUN/esbankd.state (the format is in state.h). */
#include "state.h"
#include "config.h"
#include "log.h"
#include "rundir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t state_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Appends one child's object at buf[*len]; false when it does not fit. */
static bool state_child(const sup_child_t *c, bool first, char *buf, size_t *len)
{
	/* Names come from supervise.c's table: plain ASCII, nothing to escape. */
	int n = snprintf(buf + *len, STATE_BYTES_MAX - *len,
	                 "%s\n  {\"name\": \"%s\", \"pid\": %ld, \"running\": %s, "
	                 "\"restarts\": %u, \"up_since_ms\": %llu}",
	                 first ? "" : ",", c->name, (long)c->pid, c->running ? "true" : "false",
	                 c->restarts, (unsigned long long)c->up_since_ms);
	if (n < 0 || (size_t)n >= STATE_BYTES_MAX - *len)
		return false;
	*len += (size_t)n;
	return true;
}

void state_write(const supervisor_t *s)
{
	char buf[STATE_BYTES_MAX];
	int n = snprintf(buf, sizeof(buf),
	                 "{\"esbankd_pid\": %ld, \"state\": \"%s\", \"updated_ms\": %llu, "
	                 "\"children\": [",
	                 (long)getpid(), s->stopping ? "stopping" : s->live ? "running" : "starting",
	                 (unsigned long long)state_now_ms());
	size_t len = (size_t)n;
	bool fits = n > 0 && len < sizeof(buf);
	for (size_t i = 0; fits && i < s->nchildren; i++)
		fits = state_child(&s->children[i], i == 0, buf, &len);
	n = fits ? snprintf(buf + len, sizeof(buf) - len, "\n]}\n") : -1;
	if (n < 0 || (size_t)n >= sizeof(buf) - len) {
		log_error(STATE_FILE " does not fit in %d bytes: not written", STATE_BYTES_MAX);
		return;
	}
	len += (size_t)n;
	int rc = rundir_replace(s->cfg->run_dir, STATE_FILE, buf, len);
	if (rc < 0)
		log_warn("cannot write %s/" STATE_FILE ": %s", s->cfg->run_dir, strerror(-rc));
}

void state_remove(const supervisor_t *s)
{
	char *path = config_path(s->cfg->run_dir, STATE_FILE);
	if (path)
		unlink(path);
	free(path);
}
