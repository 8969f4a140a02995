/*
 * replicator.c - the process: the bus socket, signals, start-up, the inbox.
 *
 * Start-up: the socket listens at once; connecting to NATS, making sure
 * the stream exists and reading its tail run off the loop (they wait for
 * replies) and are retried every REPL_RETRY_MS until they succeed. A bus
 * session opened meanwhile gets its hello only then, and a primary's hello
 * also waits for every publish in flight to be acknowledged or resynced, so
 * that its hwm is what the stream holds.
 *
 * nats.c's threads report through the inbox (js.c); one uv_async wakes the
 * loop, which hands the notes to serve.c in order.
 */
#include "replicator.h"

#include "config.h"
#include "diag.h"
#include "protocol.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REPL_DIR_MODE 0700
#define REPL_TICK_MS 250 /* the heartbeat goes out every other tick */

static void repl_wake_cb(uv_async_t *a)
{
	repl_t *r = a->data;
	serve_notes(r, js_inbox_take(r));
}

static void repl_tick_cb(uv_timer_t *t)
{
	static unsigned ticks;
	repl_t *r = t->data;
	if (++ticks % (REPL_HEARTBEAT_MS / REPL_TICK_MS) == 0)
		publish_heartbeat(r);
	follow_tick(r);
	keys_follow_tick(r);
}

static void repl_start_work(uv_work_t *w)
{
	repl_job_t *j = w->data;
	repl_t *r = j->r;
	if (!r->nc)
		j->result = js_connect(r, j->text, sizeof(j->text));
	if (j->result == 0) {
		j->result = js_read_tail(r, &j->tail);
		if (j->result < 0)
			snprintf(j->text, sizeof(j->text), "cannot read the tail of %s", r->log_subject);
	}
	if (j->result == 0)
		j->result = keys_start(r, j->text, sizeof(j->text));
}

static void repl_start(repl_t *r);

static void repl_retry_cb(uv_timer_t *t)
{
	repl_start(t->data);
}

static void repl_start_done(uv_work_t *w, int status)
{
	repl_job_t *j = w->data;
	repl_t *r = j->r;
	j->busy = false;
	if (r->stopping)
		return;
	if (j->result == -EEXIST) { /* the key secret: another bank's data or stream */
		diag_error("%s; stopping", j->text);
		exit(EXIT_USAGE);
	}
	if (status < 0 || j->result < 0) {
		diag_warn("%s; retrying every %d ms", j->text, REPL_RETRY_MS);
		uv_timer_start(&r->retry_timer, repl_retry_cb, REPL_RETRY_MS, 0);
		return;
	}
	char hex[REPL_HEX_BYTES];
	out_hex(j->tail.head, hex);
	diag_info("stream %s: %" PRIu64 " messages, last event %" PRIu64 ", head %s", r->cfg.stream,
	         j->tail.stream_seq, j->tail.last, hex);
	if (r->cfg.mode == REPL_MODE_PRIMARY)
		publish_init(r, &j->tail);
	follow_init(r, &j->tail);
	r->ready = true;
	uv_timer_start(&r->tick, repl_tick_cb, REPL_TICK_MS, REPL_TICK_MS);
	out_maybe_hello(r);
}

static void repl_start(repl_t *r)
{
	r->start_job.text[0] = 0;
	repl_job_start(r, &r->start_job, repl_start_work, repl_start_done);
}

static void repl_session_opened(peer_server_t *p, conn_t *bus)
{
	repl_t *r = p->data;
	r->greeted = false;
	out_maybe_hello(r);
}

static void repl_session_closed(peer_server_t *p, conn_t *bus)
{
	repl_t *r = p->data;
	r->greeted = false;
	if (r->mode == REPL_MODE_PRIMARY && r->ready)
		publish_session_closed(r);
}

static void repl_close_cb(uv_handle_t *h)
{
	(void)h;
}

static void repl_signal_cb(uv_signal_t *s, int signum)
{
	repl_t *r = s->data;
	if (r->stopping)
		return;
	diag_info("signal %d: stopping", signum);
	r->stopping = true;
	peer_stop(&r->bus);
	js_inbox_close(r);
	uv_close((uv_handle_t *)&r->inbox.wake, repl_close_cb);
	uv_close((uv_handle_t *)&r->retry_timer, repl_close_cb);
	uv_close((uv_handle_t *)&r->tick, repl_close_cb);
	uv_close((uv_handle_t *)&r->keys_timer, repl_close_cb);
	uv_close((uv_handle_t *)&r->sigterm, repl_close_cb);
	uv_close((uv_handle_t *)&r->sigint, repl_close_cb);
}

static int repl_listen(repl_t *r)
{
	r->sock_path = config_path(r->cfg.run_dir, REPL_SOCK_NAME);
	if (!r->sock_path)
		return -ENOMEM;
	r->bus.data = r;
	r->bus.handlers = repl_handlers;
	r->bus.on_open = repl_session_opened;
	r->bus.on_close = repl_session_closed;
	int rc = peer_listen(&r->bus, r->loop, PEER_ROLE_REPLICATOR, r->sock_path);
	if (rc < 0) {
		diag_error("cannot listen on %s: %s", r->sock_path, uv_strerror(rc));
		return rc;
	}
	uv_signal_t *sigs[] = { &r->sigterm, &r->sigint };
	int nums[] = { SIGTERM, SIGINT };
	for (int i = 0; i < 2; i++) {
		sigs[i]->data = r;
		uv_signal_init(r->loop, sigs[i]);
		uv_signal_start(sigs[i], repl_signal_cb, nums[i]);
	}
	return 0;
}

static int repl_setup(repl_t *r, const repl_config_t *cfg)
{
	r->loop = uv_default_loop();
	r->cfg = *cfg;
	r->mode = cfg->mode;
	snprintf(r->log_subject, sizeof(r->log_subject), "%s.log", cfg->stream);
	snprintf(r->hb_subject, sizeof(r->hb_subject), "%s.hb", cfg->stream);
	snprintf(r->mail_stream, sizeof(r->mail_stream), "%s_MAIL", cfg->stream);
	snprintf(r->receipts_subject, sizeof(r->receipts_subject), "%s.receipts", cfg->stream);
	snprintf(r->keys_stream, sizeof(r->keys_stream), "%s_KEYS", cfg->stream);
	pthread_mutex_init(&r->keys_lock, NULL);
	const char *dirs[] = { cfg->data_dir, cfg->run_dir };
	for (int i = 0; i < 2; i++) {
		int rc = config_mkdirs(dirs[i], REPL_DIR_MODE);
		if (rc < 0) {
			diag_error("cannot create %s: %s", dirs[i], strerror(-rc));
			return rc;
		}
	}
	uv_timer_init(r->loop, &r->retry_timer);
	uv_timer_init(r->loop, &r->tick);
	uv_timer_init(r->loop, &r->keys_timer);
	r->retry_timer.data = r->tick.data = r->keys_timer.data = r;
	int rc = js_inbox_init(r, repl_wake_cb);
	return rc < 0 ? rc : repl_listen(r);
}

int repl_run(const repl_config_t *cfg)
{
	static repl_t r;
	int rc = repl_setup(&r, cfg);
	if (rc < 0)
		return rc == UV_EADDRINUSE || rc == -ENOMEM ? EXIT_TEMPORARY : EXIT_USAGE;
	diag_info("listening on %s (%s, stream %s, node %s)", r.sock_path,
	         cfg->mode == REPL_MODE_PRIMARY ? "primary" : "standby", cfg->stream, cfg->node);
	repl_start(&r);
	uv_run(r.loop, UV_RUN_DEFAULT);
	serve_notes(&r, js_inbox_take(&r)); /* frees what came in last */
	js_close(&r);
	serve_notes(&r, js_inbox_take(&r));
	publish_free(&r);
	keystore_close(&r.keys);
	unlink(r.sock_path);
	free(r.sock_path);
	uv_loop_close(r.loop);
	nats_Close();
	return 0;
}
