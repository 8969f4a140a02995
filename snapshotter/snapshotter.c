/*
 * snapshotter.c - the snapshotter's peer connection (docs/peers.md).
 *
 * Messages (each a frame holding one msgpack map):
 *   -> bus  {"t":"hello","role":"snapshotter","hwm":N}  on every new connection
 *   <- bus  {"t":"events","events":[bin, ...]}          durable events, in order
 *   -> bus  {"t":"ack","hwm":N,"snapshot":S}            after each batch
 * N is the seq of the last event applied (ledger_last_seq), S the newest
 * snapshot (0: none yet). An event at or below N is ignored (a resend); one
 * that does not decode or that the rules refuse (ledger_check_event) is
 * logged and skipped. Running out of memory while applying ends the process
 * (exit 111): its state would no longer match the log.
 */
#include "snapshotter.h"
#include "config.h"
#include "conn.h"
#include "event.h"
#include "ledger.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define SNAPSHOTTER_CONNS_MAX 8

typedef struct {
	uv_loop_t *loop;
	listener_t listener;
	conn_t *conns[SNAPSHOTTER_CONNS_MAX];
	uv_signal_t sig_term, sig_int;
	ledger_t *ledger;
	uint64_t snapshot_seq;
	char *sock_path;
	const snapshotter_config_t *cfg;
} snapshotter_t;

static void snapshotter_send(snapshotter_t *s, conn_t *c, bool hello)
{
	msgpack_packer *pk = conn_pack_begin(c);
	msgpack_pack_map(pk, 3);
	msg_pack_kv_str(pk, "t", hello ? "hello" : "ack");
	if (hello)
		msg_pack_kv_str(pk, "role", "snapshotter");
	msg_pack_kv_u64(pk, "hwm", ledger_last_seq(s->ledger));
	if (!hello)
		msg_pack_kv_u64(pk, "snapshot", s->snapshot_seq);
	conn_pack_end(c);
}

static void snapshotter_apply(snapshotter_t *s, const msgpack_object *o)
{
	static ledger_event_t ev;
	if (o->type != MSGPACK_OBJECT_BIN ||
	    event_decode_bytes(o->via.bin.ptr, o->via.bin.size, &ev) < 0) {
		log_error("an event that does not decode: skipped");
		return;
	}
	if (ev.seq <= ledger_last_seq(s->ledger))
		return;
	ledger_err_t e = ledger_check_event(s->ledger, &ev);
	if (e != LEDGER_OK) {
		log_error("event %" PRIu64 " refused (%s) at hwm %" PRIu64 ": skipped", ev.seq,
		          ledger_err_name(e), ledger_last_seq(s->ledger));
		return;
	}
	if (ledger_apply(s->ledger, &ev, NULL) < 0) {
		log_error("out of memory applying event %" PRIu64, ev.seq);
		exit(EXIT_TEMPORARY);
	}
}

static void snapshotter_on_events(snapshotter_t *s, conn_t *c, const msgpack_object *msg)
{
	const msgpack_object *events = msg_get(msg, "events");
	if (!events || events->type != MSGPACK_OBJECT_ARRAY) {
		log_warn("events message without events: ignored");
		return;
	}
	for (uint32_t i = 0; i < events->via.array.size; i++)
		snapshotter_apply(s, &events->via.array.ptr[i]);
	snapshotter_send(s, c, false);
}

static void snapshotter_on_frame(conn_t *c, const char *body, size_t len)
{
	snapshotter_t *s = c->data;
	msgpack_zone zone;
	msgpack_object msg;
	const msgpack_object *t = NULL;
	msgpack_zone_init(&zone, 4096);
	if (msg_decode_map(body, len, &zone, &msg) < 0)
		log_warn("undecodable frame from the bus: ignored");
	else if ((t = msg_get(&msg, "t")) != NULL && msg_str_eq(t, "events"))
		snapshotter_on_events(s, c, &msg);
	else
		log_warn("message the snapshotter does not understand: ignored");
	msgpack_zone_destroy(&zone);
}

static void snapshotter_on_close(conn_t *c)
{
	snapshotter_t *s = c->data;
	for (size_t i = 0; i < SNAPSHOTTER_CONNS_MAX; i++)
		if (s->conns[i] == c)
			s->conns[i] = NULL;
	free(c);
}

static void snapshotter_on_accept(listener_t *l)
{
	snapshotter_t *s = l->data;
	size_t slot = 0;
	while (slot < SNAPSHOTTER_CONNS_MAX && s->conns[slot])
		slot++;
	conn_t *c = calloc(1, sizeof(*c));
	if (!c) {
		log_error("out of memory accepting a connection");
		return;
	}
	conn_init(c, s->loop, snapshotter_on_frame, snapshotter_on_close);
	c->data = s;
	if (conn_accept(l, c) < 0)
		return; /* closed; on_close frees it */
	if (slot == SNAPSHOTTER_CONNS_MAX) {
		log_warn("more than %d connections: refused", SNAPSHOTTER_CONNS_MAX);
		conn_close(c);
		return;
	}
	s->conns[slot] = c;
	log_info("bus connected; hello with hwm %" PRIu64, ledger_last_seq(s->ledger));
	snapshotter_send(s, c, true);
}

static void snapshotter_on_signal(uv_signal_t *sig, int signum)
{
	snapshotter_t *s = sig->data;
	log_info("signal %d: stopping", signum);
	listener_close(&s->listener);
	for (size_t i = 0; i < SNAPSHOTTER_CONNS_MAX; i++)
		if (s->conns[i])
			conn_close(s->conns[i]);
	uv_close((uv_handle_t *)&s->sig_term, NULL);
	uv_close((uv_handle_t *)&s->sig_int, NULL);
	uv_stop(s->loop);
}

static int snapshotter_listen(snapshotter_t *s)
{
	uv_signal_init(s->loop, &s->sig_term);
	uv_signal_init(s->loop, &s->sig_int);
	s->sig_term.data = s->sig_int.data = s;
	uv_signal_start(&s->sig_term, snapshotter_on_signal, SIGTERM);
	uv_signal_start(&s->sig_int, snapshotter_on_signal, SIGINT);
	s->sock_path = config_path(s->cfg->run_dir, "snapshotter.sock");
	int rc = s->sock_path ? config_mkdirs(s->cfg->run_dir, 0700) : -ENOMEM;
	s->listener.data = s;
	if (rc == 0)
		rc = listener_open(&s->listener, s->loop, s->sock_path, snapshotter_on_accept);
	if (rc < 0)
		log_error("%s: %s", s->sock_path ? s->sock_path : "snapshotter.sock",
		          uv_strerror(rc));
	return rc;
}

int snapshotter_run(const snapshotter_config_t *cfg)
{
	static snapshotter_t s;
	s.cfg = cfg;
	s.loop = uv_default_loop();
	s.ledger = ledger_new();
	if (!s.ledger) {
		log_error("out of memory");
		return EXIT_TEMPORARY;
	}
	int code = EXIT_TEMPORARY;
	if (snapshotter_listen(&s) < 0)
		goto out_ledger;
	log_info("listening on %s; snapshot every %" PRIu64 " events", s.sock_path,
	         cfg->snapshot_every);
	uv_run(s.loop, UV_RUN_DEFAULT);
	code = 0;
out_ledger:
	free(s.sock_path);
	ledger_free(s.ledger);
	return code;
}
