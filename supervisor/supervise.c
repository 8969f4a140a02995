/* supervise.c - the children table, start order and stop order (see supervise.h). */
#include "supervise.h"
#include "config.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* In start order. stop_phase 0 stops first. */
static const struct {
	const char *name;
	int stop_phase;
	bool optional;
} sup_table[] = {
	{ "logger", 2, false },   { "resolver", 1, false }, { "snapshotter", 1, false },
	{ "mailer", 1, false },   { "bus", 0, false },      { "http", 0, true },
};

#define SUP_TABLE_LEN (sizeof(sup_table) / sizeof(sup_table[0]))

/* path = dir/sub/file when that is an executable file; else NULL. */
static char *sup_try_exe(const char *dir, const char *sub, const char *file)
{
	char path[4096];
	int n = snprintf(path, sizeof(path), "%s%s%s/%s", dir, sub ? "/" : "", sub ? sub : "",
	                 file);
	struct stat st;
	if (n < 0 || (size_t)n >= sizeof(path) || stat(path, &st) < 0 || !S_ISREG(st.st_mode) ||
	    access(path, X_OK) < 0)
		return NULL;
	return strdup(path);
}

/* ESBANK_BIN_DIR (an explicit choice wins), then beside esbankd, then ../<name>/. */
static char *sup_find_exe(const supervisor_t *s, const char *name)
{
	char file[64], sibling[80];
	snprintf(file, sizeof(file), "esbank-%s", name);
	snprintf(sibling, sizeof(sibling), "../%s", name);
	const char *bin = getenv("ESBANK_BIN_DIR");
	char *path = bin && *bin ? sup_try_exe(bin, NULL, file) : NULL;
	if (!path && s->self_dir[0])
		path = sup_try_exe(s->self_dir, NULL, file);
	if (!path && s->self_dir[0])
		path = sup_try_exe(s->self_dir, sibling, file);
	return path;
}

static void sup_self_dir(supervisor_t *s)
{
	ssize_t n = readlink("/proc/self/exe", s->self_dir, sizeof(s->self_dir) - 1);
	s->self_dir[n > 0 ? n : 0] = '\0';
	char *slash = strrchr(s->self_dir, '/');
	if (slash)
		*slash = '\0';
}

static void sup_args(const supervisor_t *s, sup_child_t *c)
{
	const sup_config_t *cfg = s->cfg;
	size_t n = 0;
	c->argv[n++] = c->path;
	c->argv[n++] = "--data";
	c->argv[n++] = cfg->data_dir;
	c->argv[n++] = "--run";
	c->argv[n++] = cfg->run_dir;
	const char *flag = NULL, *value = NULL;
	if (strcmp(c->name, "resolver") == 0)
		flag = "--pwhash-cost", value = cfg->pwhash_cost;
	else if (strcmp(c->name, "snapshotter") == 0)
		flag = "--snapshot-every", value = cfg->snapshot_every;
	else if (strcmp(c->name, "mailer") == 0)
		flag = "--public-url", value = cfg->public_url;
	else if (strcmp(c->name, "http") == 0)
		flag = "--http", value = cfg->http;
	if (flag) {
		c->argv[n++] = flag;
		c->argv[n++] = value;
	}
	c->argv[n] = NULL;
}

/* Fills the children table. -ENOENT when a required executable is missing. */
static int sup_find_all(supervisor_t *s)
{
	bool http_on = strcmp(s->cfg->http, "off") != 0;
	for (size_t i = 0; i < SUP_TABLE_LEN; i++) {
		if (strcmp(sup_table[i].name, "http") == 0 && !http_on)
			continue;
		char *path = sup_find_exe(s, sup_table[i].name);
		if (!path && sup_table[i].optional) {
			log_warn("esbank-%s not found: not started", sup_table[i].name);
			continue;
		}
		if (!path) {
			log_error("esbank-%s not found (beside esbankd, in ../%s/, or in "
			          "ESBANK_BIN_DIR)", sup_table[i].name, sup_table[i].name);
			return -ENOENT;
		}
		sup_child_t *c = &s->children[s->nchildren++];
		c->name = sup_table[i].name;
		c->stop_phase = sup_table[i].stop_phase;
		c->optional = sup_table[i].optional;
		c->path = path;
		c->sup = s;
		sup_args(s, c);
	}
	return 0;
}

static void sup_done(supervisor_t *s)
{
	if (!uv_is_closing((uv_handle_t *)&s->stop_timer))
		uv_close((uv_handle_t *)&s->stop_timer, NULL);
	log_info("esbank stopped (exit %d)", s->exit_code);
}

static void sup_on_output_close(output_t *o)
{
	supervisor_t *s = o->data;
	s->outputs_open--;
	if (s->finishing && s->outputs_open == 0)
		sup_done(s);
}

static void sup_on_drain_timeout(uv_timer_t *t)
{
	supervisor_t *s = t->data;
	for (size_t i = 0; i < s->nchildren; i++) {
		output_close(&s->children[i].out);
		output_close(&s->children[i].err);
	}
}

/* Every child has exited: wait a little for their last lines, then end. */
static void sup_finish(supervisor_t *s)
{
	s->finishing = true;
	uv_close((uv_handle_t *)&s->sig_term, NULL);
	uv_close((uv_handle_t *)&s->sig_int, NULL);
	if (s->outputs_open == 0) {
		sup_done(s);
		return;
	}
	uv_timer_start(&s->stop_timer, sup_on_drain_timeout, SUP_DRAIN_TIMEOUT_MS, 0);
}

static bool sup_phase_running(const supervisor_t *s, int phase)
{
	for (size_t i = 0; i < s->nchildren; i++)
		if (s->children[i].running && s->children[i].stop_phase == phase)
			return true;
	return false;
}

static void sup_on_stop_timeout(uv_timer_t *t)
{
	supervisor_t *s = t->data;
	for (size_t i = 0; i < s->nchildren; i++) {
		sup_child_t *c = &s->children[i];
		if (!c->running || c->stop_phase != s->stop_phase)
			continue;
		log_warn("%s did not stop within %d ms: SIGKILL", c->name, SUP_STOP_TIMEOUT_MS);
		uv_process_kill(&c->proc, SIGKILL);
	}
}

/* Sends SIGTERM to the current phase; skips phases with nobody running. */
static void sup_stop_phase(supervisor_t *s)
{
	for (; s->stop_phase < SUP_STOP_PHASES; s->stop_phase++) {
		if (!sup_phase_running(s, s->stop_phase))
			continue;
		for (size_t i = 0; i < s->nchildren; i++) {
			sup_child_t *c = &s->children[i];
			if (c->running && c->stop_phase == s->stop_phase) {
				log_info("stopping %s", c->name);
				uv_process_kill(&c->proc, SIGTERM);
			}
		}
		uv_timer_start(&s->stop_timer, sup_on_stop_timeout, SUP_STOP_TIMEOUT_MS, 0);
		return;
	}
	sup_finish(s);
}

static void supervise_stop(supervisor_t *s, int exit_code)
{
	if (s->stopping)
		return;
	s->stopping = true;
	s->exit_code = exit_code;
	s->stop_phase = 0;
	ready_stop(&s->ready);
	sup_stop_phase(s);
}

static void sup_log_exit(const sup_child_t *c, int64_t status, int sig, log_level_t level)
{
	if (sig)
		log_msg(level, "%s (pid %d) was killed by signal %d (%s)", c->name, c->proc.pid,
		        sig, strsignal(sig));
	else
		log_msg(level, "%s (pid %d) exited with status %lld", c->name, c->proc.pid,
		        (long long)status);
}

/*
 * The restart policy. First form: any unexpected death stops the group with
 * EXIT_TEMPORARY. Restarting with back-off and an intensity limit goes here.
 */
static void sup_on_child_death(supervisor_t *s, sup_child_t *c, int64_t status, int sig)
{
	log_error("*** %s died unexpectedly ***", c->name);
	sup_log_exit(c, status, sig, LOG_ERROR);
	log_error("stopping the whole group (exit %d)", EXIT_TEMPORARY);
	supervise_stop(s, EXIT_TEMPORARY);
}

static void sup_on_exit(uv_process_t *p, int64_t status, int sig)
{
	sup_child_t *c = p->data;
	supervisor_t *s = c->sup;
	c->running = false;
	uv_close((uv_handle_t *)p, NULL);
	if (!s->stopping) {
		sup_on_child_death(s, c, status, sig);
		return;
	}
	sup_log_exit(c, status, sig, LOG_INFO);
	if (!sup_phase_running(s, s->stop_phase)) {
		uv_timer_stop(&s->stop_timer);
		s->stop_phase++;
		sup_stop_phase(s);
	}
}

static int sup_init_outputs(supervisor_t *s, sup_child_t *c)
{
	c->out.data = c->err.data = s;
	int rc = output_init(&c->out, s->loop, c->name, sup_on_output_close);
	if (rc < 0)
		return rc;
	rc = output_init(&c->err, s->loop, c->name, sup_on_output_close);
	if (rc < 0) {
		output_close(&c->out);
		s->outputs_open++;
		return rc;
	}
	s->outputs_open += 2;
	return 0;
}

static int sup_spawn(supervisor_t *s, sup_child_t *c)
{
	int rc = sup_init_outputs(s, c);
	if (rc < 0)
		return rc;
	const uv_stdio_flags piped = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	uv_stdio_container_t stdio[3] = {
		{ .flags = UV_IGNORE },
		{ .flags = piped, .data.stream = (uv_stream_t *)&c->out.pipe },
		{ .flags = piped, .data.stream = (uv_stream_t *)&c->err.pipe },
	};
	uv_process_options_t o = {
		.exit_cb = sup_on_exit, .file = c->path, .args = (char **)c->argv,
		.stdio_count = 3, .stdio = stdio,
		.flags = UV_PROCESS_DETACHED, /* a terminal's ^C reaches esbankd alone */
	};
	c->proc.data = c;
	rc = uv_spawn(s->loop, &c->proc, &o);
	if (rc < 0) {
		log_error("cannot start %s: %s", c->path, uv_strerror(rc));
		uv_close((uv_handle_t *)&c->proc, NULL);
		output_close(&c->out);
		output_close(&c->err);
		return rc;
	}
	c->running = true;
	output_start(&c->out);
	output_start(&c->err);
	log_info("started %s (pid %d)", c->name, c->proc.pid);
	return 0;
}

static int sup_start_all(supervisor_t *s)
{
	for (size_t i = 0; i < s->nchildren; i++) {
		int rc = sup_spawn(s, &s->children[i]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static void sup_on_ready(ready_t *r)
{
	supervisor_t *s = r->data;
	log_info("esbank is live");
	int fd = s->cfg->ready_fd;
	if (fd < 0)
		return;
	static const char msg[] = "READY=1\n";
	signal(SIGPIPE, SIG_IGN); /* a caller that went away is no reason to die */
	if (write(fd, msg, sizeof(msg) - 1) < 0)
		log_warn("--ready-fd %d: %s", fd, strerror(errno));
	signal(SIGPIPE, SIG_DFL);
	close(fd);
}

static void sup_on_signal(uv_signal_t *sig, int signum)
{
	supervisor_t *s = sig->data;
	log_info("signal %d: stopping the group", signum);
	supervise_stop(s, s->stopping ? s->exit_code : 0);
}

static int sup_prepare_dirs(const sup_config_t *cfg)
{
	int rc = config_mkdirs(cfg->run_dir, 0700);
	if (rc == 0 && chmod(cfg->run_dir, 0700) < 0)
		rc = -errno;
	if (rc < 0) {
		log_error("%s: %s", cfg->run_dir, strerror(-rc));
		return rc;
	}
	rc = config_mkdirs(cfg->data_dir, 0700);
	if (rc < 0)
		log_error("%s: %s", cfg->data_dir, strerror(-rc));
	return rc;
}

static void sup_init_handles(supervisor_t *s)
{
	uv_signal_init(s->loop, &s->sig_term);
	uv_signal_init(s->loop, &s->sig_int);
	s->sig_term.data = s->sig_int.data = s;
	uv_signal_start(&s->sig_term, sup_on_signal, SIGTERM);
	uv_signal_start(&s->sig_int, sup_on_signal, SIGINT);
	uv_timer_init(s->loop, &s->stop_timer);
	s->stop_timer.data = s;
	s->ready.data = s;
}

static void sup_start_ready(supervisor_t *s)
{
	char *bus_sock = config_path(s->cfg->run_dir, "bus.sock");
	int rc = bus_sock ? ready_start(&s->ready, s->loop, bus_sock, sup_on_ready) : -ENOMEM;
	free(bus_sock);
	if (rc < 0) {
		log_error("cannot poll the bus: %s", strerror(-rc));
		supervise_stop(s, EXIT_TEMPORARY);
	}
}

int supervise_run(const sup_config_t *cfg)
{
	static supervisor_t s;
	s.loop = uv_default_loop();
	s.cfg = cfg;
	sup_self_dir(&s);
	if (sup_prepare_dirs(cfg) < 0)
		return EXIT_TEMPORARY;
	if (sup_find_all(&s) < 0)
		return EXIT_USAGE;
	sup_init_handles(&s);
	if (sup_start_all(&s) < 0)
		supervise_stop(&s, EXIT_TEMPORARY);
	else
		sup_start_ready(&s);
	uv_run(s.loop, UV_RUN_DEFAULT);
	for (size_t i = 0; i < s.nchildren; i++)
		free(s.children[i].path);
	return s.exit_code;
}
