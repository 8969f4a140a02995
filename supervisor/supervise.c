/* supervise.c - the children table, start order and stop order (see supervise.h). */
#include "supervise.h"
#include "child.h"
#include "config.h"
#include "listening.h"
#include "lock.h"
#include "notify.h"
#include "diag.h"
#include "rundir.h"
#include "state.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* In start order. stop_phase 0 stops first. */
static const struct {
	const char *name;
	int stop_phase;
	bool optional;
} sup_table[] = {
	{ "logger", 2, false },   { "replicator", 1, false }, { "resolver", 1, false },
	{ "snapshotter", 1, false }, { "mailer", 1, false },  { "bus", 0, false },
	{ "http", 0, true },
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

static void sup_self(supervisor_t *s)
{
	ssize_t n = readlink("/proc/self/exe", s->self_exe, sizeof(s->self_exe) - 1);
	s->self_exe[n > 0 ? n : 0] = '\0';
	memcpy(s->self_dir, s->self_exe, sizeof(s->self_dir));
	char *slash = strrchr(s->self_dir, '/');
	if (slash)
		*slash = '\0';
	snprintf(s->pid_text, sizeof(s->pid_text), "%ld", (long)getpid());
}

/* The replicator's options shared by its modes and --rejoin, from argv[n]. */
static size_t sup_repl_args(const sup_config_t *cfg, const char **argv, size_t n)
{
	argv[n++] = "--nats";
	argv[n++] = cfg->replicate ? cfg->replicate : cfg->follow;
	argv[n++] = "--stream";
	argv[n++] = cfg->stream;
	argv[n++] = "--replicas";
	argv[n++] = cfg->replicas;
	if (cfg->node) {
		argv[n++] = "--node";
		argv[n++] = cfg->node;
	}
	if (cfg->auto_promote && cfg->follow) {
		argv[n++] = "--auto-promote";
		argv[n++] = cfg->auto_promote;
	}
	return n;
}

/* esbankd --exec-child NAME PPID -- PROG --data D --run R [FLAG VALUE] */
static void sup_args(const supervisor_t *s, sup_child_t *c)
{
	const sup_config_t *cfg = s->cfg;
	size_t n = 0;
	c->argv[n++] = s->self_exe[0] ? s->self_exe : "esbankd";
	c->argv[n++] = CHILD_EXEC_FLAG;
	c->argv[n++] = c->name;
	c->argv[n++] = s->pid_text;
	c->argv[n++] = "--";
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
	else if (strcmp(c->name, "bus") == 0)
		flag = "--allow-group", value = cfg->allow_group;
	if (flag && value) {
		c->argv[n++] = flag;
		c->argv[n++] = value;
	}
	if (strcmp(c->name, "mailer") == 0 && cfg->mail) {
		c->argv[n++] = "--mail";
		c->argv[n++] = cfg->mail;
	}
	if (strcmp(c->name, "bus") == 0 && (cfg->replicate || cfg->follow)) {
		c->argv[n++] = "--replication";
		c->argv[n++] = cfg->replicate ? "primary" : "standby";
	}
	if (strcmp(c->name, "replicator") == 0) {
		c->argv[n++] = "--mode";
		c->argv[n++] = cfg->replicate ? "primary" : "standby";
		n = sup_repl_args(cfg, c->argv, n);
	}
	assert(n <= SUP_ARGS_MAX);
	c->argv[n] = NULL;
}

/* Fills the children table. -ENOENT when a required executable is missing. */
static int sup_find_all(supervisor_t *s)
{
	bool http_on = strcmp(s->cfg->http, "off") != 0;
	for (size_t i = 0; i < SUP_TABLE_LEN; i++) {
		if (strcmp(sup_table[i].name, "http") == 0 && !http_on)
			continue;
		if (strcmp(sup_table[i].name, "replicator") == 0 && !s->cfg->replicate &&
		    !s->cfg->follow)
			continue; /* not replicated: no replicator */
		char *path = sup_find_exe(s, sup_table[i].name);
		if (!path && sup_table[i].optional) {
			diag_warn("esbank-%s not found: not started", sup_table[i].name);
			continue;
		}
		if (!path) {
			diag_error("esbank-%s not found (beside esbankd, in ../%s/, or in "
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

/* What c said last: its last error line without "error: ", else its last line. */
static const char *sup_last_words(const sup_child_t *c)
{
	const output_t *o = output_last_is_error(&c->err) ? &c->err
	                    : output_last_is_error(&c->out) || !*output_last(&c->err) ? &c->out
	                                                                              : &c->err;
	const char *line = output_last(o);
	size_t plen = strlen("error: ");
	if (output_last_is_error(o))
		line += plen;
	return *line ? line : "(it printed nothing)";
}

static void sup_done(supervisor_t *s)
{
	if (!uv_is_closing((uv_handle_t *)&s->stop_timer))
		uv_close((uv_handle_t *)&s->stop_timer, NULL);
	for (size_t i = 0; i < s->nchildren; i++) {
		uv_handle_t *t = (uv_handle_t *)&s->children[i].restart_timer;
		if (!uv_is_closing(t))
			uv_close(t, NULL);
	}
	state_remove(s);
	/* Last, once its output has drained: the reason the operator must fix. */
	if (s->failed)
		diag_error("%s failed with a permanent error (exit %d): %s", s->failed->name,
		          EXIT_USAGE, sup_last_words(s->failed));
	diag_info("esbank stopped (exit %d)", s->exit_code);
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
		diag_warn("%s did not stop within %d ms: SIGKILL", c->name, SUP_STOP_TIMEOUT_MS);
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
				diag_info("stopping %s", c->name);
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
	for (size_t i = 0; i < s->nchildren; i++)
		uv_timer_stop(&s->children[i].restart_timer); /* no restarts from now on */
	ready_stop(&s->ready);
	state_write(s);
	sup_stop_phase(s);
}

static void sup_log_exit(const sup_child_t *c, int64_t status, int sig, diag_level_t level)
{
	if (sig)
		diag_msg(level, "%s (pid %ld) was killed by signal %d (%s)", c->name, (long)c->pid,
		        sig, strsignal(sig));
	else
		diag_msg(level, "%s (pid %ld) exited with status %lld", c->name, (long)c->pid,
		        (long long)status);
}

static int sup_spawn(supervisor_t *s, sup_child_t *c);
static void sup_on_child_death(supervisor_t *s, sup_child_t *c);

/* The old process's handles are closed by now, save in odd cases: wait for them. */
static void sup_on_restart_timer(uv_timer_t *t)
{
	sup_child_t *c = t->data;
	supervisor_t *s = c->sup;
	if (s->stopping)
		return;
	if (c->proc_open || c->out.in_use || c->err.in_use) {
		output_close(&c->out);
		output_close(&c->err);
		uv_timer_start(t, sup_on_restart_timer, SUP_RESTART_RETRY_MS, 0);
		return;
	}
	c->restarts++;
	if (sup_spawn(s, c) < 0) {
		c->restarts--;
		c->started_ms = uv_now(s->loop);
		sup_on_child_death(s, c);
	}
}

/*
 * The restart policy (restart.h): restart c alone after its back-off delay,
 * or, when it dies too often, stop the whole group with EXIT_TEMPORARY.
 */
static void sup_on_child_death(supervisor_t *s, sup_child_t *c)
{
	uint64_t now = uv_now(s->loop);
	int64_t delay_ms = restart_on_death(&c->restart, now, now - c->started_ms);
	if (delay_ms < 0) {
		diag_error("%s died more than %d times within %d s: stopping the whole group "
		          "(exit %d)", c->name, RESTART_INTENSITY_MAX, RESTART_PERIOD_MS / 1000,
		          EXIT_TEMPORARY);
		supervise_stop(s, EXIT_TEMPORARY);
		return;
	}
	diag_warn("restarting %s in %lld ms", c->name, (long long)delay_ms);
	uv_timer_start(&c->restart_timer, sup_on_restart_timer, (uint64_t)delay_ms, 0);
	state_write(s);
}

/* A program that says its error is permanent (exit 100) is not restarted. */
static void sup_on_permanent(supervisor_t *s, sup_child_t *c)
{
	diag_error("%s (pid %ld) exited with status %d, a permanent error: not restarting it; "
	          "stopping the whole group (exit %d)", c->name, (long)c->pid, EXIT_USAGE,
	          EXIT_USAGE);
	s->failed = c;
	supervise_stop(s, EXIT_USAGE);
}

static void sup_on_proc_closed(uv_handle_t *h)
{
	sup_child_t *c = h->data;
	c->proc_open = false;
}

static void sup_on_exit(uv_process_t *p, int64_t status, int sig)
{
	sup_child_t *c = p->data;
	supervisor_t *s = c->sup;
	c->running = false;
	uv_close((uv_handle_t *)p, sup_on_proc_closed);
	rundir_pid_remove(s->cfg->run_dir, c->name);
	if (!s->stopping && !sig && status == EXIT_USAGE) {
		sup_on_permanent(s, c);
		return;
	}
	if (!s->stopping) {
		sup_log_exit(c, status, sig, DIAG_ERROR);
		sup_on_child_death(s, c);
		return;
	}
	sup_log_exit(c, status, sig, DIAG_INFO);
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

static void sup_on_started(supervisor_t *s, sup_child_t *c)
{
	c->running = true;
	c->pid = c->proc.pid;
	c->started_ms = uv_now(s->loop);
	c->up_since_ms = state_now_ms();
	output_start(&c->out);
	output_start(&c->err);
	int rc = rundir_pid_write(s->cfg->run_dir, c->name, c->pid);
	if (rc < 0)
		diag_warn("cannot write %s/%s.pid: %s", s->cfg->run_dir, c->name, strerror(-rc));
	if (c->restarts)
		diag_info("restarted %s (pid %ld, restart %u)", c->name, (long)c->pid, c->restarts);
	else
		diag_info("started %s (pid %ld)", c->name, (long)c->pid);
	state_write(s);
}

/*
 * Starts c through the exec wrapper (child.h): /proc/self/exe is esbankd's
 * own executable, even if the file was replaced since. A restart that
 * cannot start counts as one more death.
 */
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
		.exit_cb = sup_on_exit, .file = "/proc/self/exe", .args = (char **)c->argv,
		.stdio_count = 3, .stdio = stdio,
		.flags = UV_PROCESS_DETACHED, /* a terminal's ^C reaches esbankd alone */
	};
	c->proc.data = c;
	c->proc_open = true;
	rc = uv_spawn(s->loop, &c->proc, &o);
	if (rc < 0) {
		diag_error("cannot start %s: %s", c->path, uv_strerror(rc));
		uv_close((uv_handle_t *)&c->proc, sup_on_proc_closed);
		output_close(&c->out);
		output_close(&c->err);
		return rc;
	}
	sup_on_started(s, c);
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

/* What the bus cannot see: every child running, and http holding its port. */
static bool sup_rest_ready(ready_t *r)
{
	const supervisor_t *s = r->data;
	for (size_t i = 0; i < s->nchildren; i++) {
		const sup_child_t *c = &s->children[i];
		if (!c->running || (strcmp(c->name, "http") == 0 && !listening_tcp(c->pid)))
			return false;
	}
	return true;
}

static void sup_on_ready(ready_t *r)
{
	supervisor_t *s = r->data;
	s->live = true;
	state_write(s);
	diag_info("esbank is live");
	int rc = notify_ready(); /* systemd's Type=notify */
	if (rc < 0)
		diag_warn("NOTIFY_SOCKET: %s", strerror(-rc));
	int fd = s->cfg->ready_fd;
	if (fd < 0)
		return;
	static const char msg[] = "READY=1\n";
	signal(SIGPIPE, SIG_IGN); /* a caller that went away is no reason to die */
	if (write(fd, msg, sizeof(msg) - 1) < 0)
		diag_warn("--ready-fd %d: %s", fd, strerror(errno));
	signal(SIGPIPE, SIG_DFL);
	close(fd);
}

static void sup_on_signal(uv_signal_t *sig, int signum)
{
	supervisor_t *s = sig->data;
	diag_info("signal %d: stopping the group", signum);
	supervise_stop(s, s->stopping ? s->exit_code : 0);
}

static int sup_prepare_dirs(const sup_config_t *cfg)
{
	int rc = config_mkdirs(cfg->run_dir, 0700);
	if (rc == 0 && chmod(cfg->run_dir, 0700) < 0)
		rc = -errno;
	if (rc < 0) {
		diag_error("%s: %s", cfg->run_dir, strerror(-rc));
		return rc;
	}
	rc = config_mkdirs(cfg->data_dir, 0700);
	if (rc < 0)
		diag_error("%s: %s", cfg->data_dir, strerror(-rc));
	return rc;
}

/* The restart policy and timer of every child. */
static void sup_init_restarts(supervisor_t *s)
{
	uint64_t delay_max_ms = RESTART_DELAY_MAX_MS;
	const char *env = getenv(SUP_DELAY_MAX_ENV);
	if (env && *env) {
		char *end;
		unsigned long long v = strtoull(env, &end, 10);
		if (*end || v == 0 || v > RESTART_DELAY_MAX_MS)
			diag_warn("%s=%s ignored (1 to %d)", SUP_DELAY_MAX_ENV, env,
			         RESTART_DELAY_MAX_MS);
		else
			delay_max_ms = v;
	}
	for (size_t i = 0; i < s->nchildren; i++) {
		sup_child_t *c = &s->children[i];
		restart_init(&c->restart, delay_max_ms);
		uv_timer_init(s->loop, &c->restart_timer);
		c->restart_timer.data = c;
	}
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
	sup_init_restarts(s);
}

static void sup_start_ready(supervisor_t *s)
{
	char *bus_sock = config_path(s->cfg->run_dir, "bus.sock");
	int rc = bus_sock ? ready_start(&s->ready, s->loop, bus_sock, sup_rest_ready,
	                                    sup_on_ready) : -ENOMEM;
	free(bus_sock);
	if (rc < 0) {
		diag_error("cannot poll the bus: %s", strerror(-rc));
		supervise_stop(s, EXIT_TEMPORARY);
	}
}

/*
 * Before anything starts: the data directory first (a second group on the
 * same data would run a second resolver, snapshotter and mailer on it),
 * then the run directory. -EAGAIN when another esbankd holds one.
 */
static int sup_lock(supervisor_t *s)
{
	s->data_lock_fd = s->run_lock_fd = -1;
	int rc = lock_take(s->cfg->data_dir, "data", &s->data_lock_fd);
	return rc < 0 ? rc : lock_take(s->cfg->run_dir, "run", &s->run_lock_fd);
}

/* Leftovers of a killed esbankd (RUN/<name>.pid), for every name, even one not used now. */
static int sup_kill_stale(const supervisor_t *s)
{
	for (size_t i = 0; i < SUP_TABLE_LEN; i++) {
		int rc = rundir_kill_stale(s->cfg->run_dir, sup_table[i].name);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/*
 * --follow: `esbank-replicator --rejoin --nats U --stream S --data D` once,
 * before the group starts (the log is not open): it cuts the local events
 * the stream does not have. 0, or the exit code esbankd leaves with.
 */
static int sup_rejoin(const supervisor_t *s)
{
	const sup_config_t *cfg = s->cfg;
	if (!cfg->follow)
		return 0;
	char *path = sup_find_exe(s, "replicator");
	if (!path)
		return EXIT_USAGE; /* sup_find_all said so */
	const char *argv[] = { path, "--rejoin", "--data", cfg->data_dir, "--nats", cfg->follow,
		               "--stream", cfg->stream, NULL };
	diag_info("rejoining: %s --rejoin", path);
	int status = -1;
	pid_t pid = fork();
	if (pid == 0) {
		execv(path, (char *const *)argv);
		_exit(EXIT_TEMPORARY);
	}
	while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	free(path);
	if (pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	int code = pid > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	int sig = pid > 0 && WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	diag_error("esbank-replicator --rejoin failed (%s %d): not starting the group",
	          code >= 0 ? "exit" : sig ? "signal" : "status", code >= 0 ? code : sig ? sig : status);
	return code == EXIT_USAGE ? EXIT_USAGE : EXIT_TEMPORARY;
}

int supervise_run(const sup_config_t *cfg)
{
	static supervisor_t s;
	s.loop = uv_default_loop();
	s.cfg = cfg;
	sup_self(&s);
	if (sup_prepare_dirs(cfg) < 0)
		return EXIT_TEMPORARY;
	int rc = sup_lock(&s);
	if (rc < 0)
		return rc == -EAGAIN ? EXIT_USAGE : EXIT_TEMPORARY;
	if (sup_find_all(&s) < 0)
		return EXIT_USAGE;
	rc = sup_rejoin(&s);
	if (rc != 0)
		return rc;
	if (sup_kill_stale(&s) < 0)
		return EXIT_TEMPORARY;
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
