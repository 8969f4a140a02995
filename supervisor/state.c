/* state.c - esbankd writes RUN/esbankd.state (the format is in common/runstate.h). */
#include "state.h"
#include "config.h"
#include "diag.h"
#include "rundir.h"

#include <assert.h>
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

/* The file's view of s: its pid, state and children. */
static void state_view(const supervisor_t *s, runstate_t *rs)
{
	assert(s->nchildren <= RUNSTATE_CHILDREN_MAX);
	rs->esbankd_pid = getpid();
	snprintf(rs->state, sizeof(rs->state), "%s",
	         s->stopping ? "stopping" : s->live ? "running" : "starting");
	rs->updated_ms = (int64_t)state_now_ms();
	rs->count = (int)s->nchildren;
	for (size_t i = 0; i < s->nchildren; i++) {
		const sup_child_t *c = &s->children[i];
		runstate_child_t *out = &rs->children[i];
		assert(strlen(c->name) <= RUNSTATE_NAME_MAX);
		snprintf(out->name, sizeof(out->name), "%s", c->name);
		out->pid = c->pid;
		out->running = c->running;
		out->restarts = c->restarts;
		out->up_since_ms = (int64_t)c->up_since_ms;
	}
}

void state_write(const supervisor_t *s)
{
	char buf[RUNSTATE_BYTES_MAX];
	size_t len;
	runstate_t rs;
	state_view(s, &rs);
	if (runstate_format(&rs, buf, &len) < 0) {
		diag_error(RUNSTATE_FILE " does not fit in %d bytes: not written", RUNSTATE_BYTES_MAX);
		return;
	}
	int rc = rundir_replace(s->cfg->run_dir, RUNSTATE_FILE, buf, len);
	if (rc < 0)
		diag_warn("cannot write %s/" RUNSTATE_FILE ": %s", s->cfg->run_dir, strerror(-rc));
}

void state_remove(const supervisor_t *s)
{
	char *path = config_path(s->cfg->run_dir, RUNSTATE_FILE);
	if (path)
		unlink(path);
	free(path);
}
