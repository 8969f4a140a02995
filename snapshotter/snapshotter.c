/*
 * snapshotter.c - the snapshotter's process and peer connection
 * (docs/peers.md, Snapshotter).
 *
 * Messages (each a frame holding one msgpack map):
 *   -> bus  {"t":"hello","role":"snapshotter","hwm":N,"pid":P,"snapshot":S,
 *            "chain":hex}                             on every new session
 *   <- bus  {"t":"events","events":[bin, ...],"head":hex}  durable events
 *   -> bus  {"t":"ack","hwm":N,"snapshot":S}            after each batch, after
 *                                                      each snapshot written
 *   <- bus  {"t":"reset"}      the state does not belong to the log: forget it
 *   -> bus  {"t":"ack","hwm":0,"snapshot":0}            the answer to a reset
 * N is the seq of the last event applied (ledger_last_seq), S the newest
 * snapshot of this state (the one loaded at start-up, or written since; 0:
 * none), P the process id. "chain" is the log's chain hash at N as this
 * process believes it (from the snapshot loaded, or the last "head"; 64 hex
 * digits, all zeros for N = 0), absent when unknown: the bus compares it
 * with the logger's and sends "reset" when they differ, before any events.
 * "head" in events is the log's chain hash at the last event of the batch;
 * it is remembered when the batch ends at the hwm, and only then can a
 * snapshot be taken (snapshot.c). A malformed "head" counts as absent.
 *
 * Only the bound bus session (common/peer.h) reaches these handlers.
 * An event at or below N is ignored (a resend); one after N + 1 is a gap:
 * the bus session is ended with the rest of the batch unread, so the bus
 * reconnects and catches the snapshotter up from the hello's hwm (skipping
 * it would refuse every later event and stall the snapshotter silently).
 * One that does not decode or that the rules refuse (ledger_check_event) is
 * logged and skipped. Running
 * out of memory while applying ends the process (exit 111): its state would
 * no longer match the log.
 */
#include "snapshotter.h"
#include "config.h"
#include "event.h"
#include "figures.h"
#include "diag.h"
#include "protocol.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SNAPSHOTTER_HEX_BYTES (2 * LOGFILE_HASH_BYTES + 1)

static void snapshotter_send_hello(snapshotter_t *s, conn_t *c)
{
	char hex[SNAPSHOTTER_HEX_BYTES];
	msgpack_packer *pk =
		peer_hello_begin(&s->bus, c, ledger_last_seq(s->ledger), 1 + s->chain_known);
	msg_pack_kv_u64(pk, PEER_F_SNAPSHOT, s->snapshot_seq);
	if (s->chain_known) {
		sodium_bin2hex(hex, sizeof(hex), s->chain, LOGFILE_HASH_BYTES);
		msg_pack_kv_str(pk, PEER_F_CHAIN, hex);
	}
	conn_pack_end(c);
}

static void snapshotter_send_ack(snapshotter_t *s, conn_t *c)
{
	msgpack_packer *pk = conn_pack_begin(c);
	msgpack_pack_map(pk, 3);
	msg_pack_kv_str(pk, PEER_T, PEER_MSG_ACK);
	msg_pack_kv_u64(pk, PEER_F_HWM, ledger_last_seq(s->ledger));
	msg_pack_kv_u64(pk, PEER_F_SNAPSHOT, s->snapshot_seq);
	conn_pack_end(c);
}

/* A snapshot write ended: the bus hears of it at once (snapshot.c's written_cb). */
static void snapshotter_ack_all(snapshotter_t *s)
{
	conn_t *bus = peer_bus(&s->bus);
	if (bus)
		snapshotter_send_ack(s, bus);
}

/* Applies one event; returns its seq (0 if it does not decode or is after a gap). */
static uint64_t snapshotter_apply(snapshotter_t *s, const msgpack_object *o)
{
	static ledger_event_t ev;
	if (o->type != MSGPACK_OBJECT_BIN ||
	    event_decode_bytes(o->via.bin.ptr, o->via.bin.size, &ev) < 0) {
		diag_error("an event that does not decode: skipped");
		return 0;
	}
	if (ev.seq <= ledger_last_seq(s->ledger))
		return ev.seq;
	if (ev.seq != ledger_last_seq(s->ledger) + 1) {
		char why[96];
		snprintf(why, sizeof(why), "gap: event %" PRIu64 " after %" PRIu64, ev.seq,
			 ledger_last_seq(s->ledger));
		peer_drop(&s->bus, why);
		return 0;
	}
	proto_err_t e = ledger_check_event(s->ledger, &ev);
	if (e != PROTO_OK) {
		diag_error("event %" PRIu64 " refused (%s) at hwm %" PRIu64 ": skipped", ev.seq,
			  proto_err_name(e), ledger_last_seq(s->ledger));
		return ev.seq;
	}
	if (ledger_apply(s->ledger, &ev, NULL) < 0) {
		diag_error("out of memory applying event %" PRIu64, ev.seq);
		exit(EXIT_TEMPORARY);
	}
	return ev.seq;
}

/* The batch's "head", decoded; false when absent or malformed. */
static bool snapshotter_head(const msgpack_object *msg, uint8_t out[LOGFILE_HASH_BYTES])
{
	const char *hex;
	size_t n, bin_len = 0;
	int rc = msg_get_str(msg, PEER_F_HEAD, &hex, &n);
	if (rc == -ENOENT)
		return false;
	if (rc < 0 || n != 2 * LOGFILE_HASH_BYTES ||
	    sodium_hex2bin(out, LOGFILE_HASH_BYTES, hex, n, NULL, &bin_len, NULL) != 0 ||
	    bin_len != LOGFILE_HASH_BYTES) {
		diag_warn("events with a malformed head: no snapshot at this point");
		return false;
	}
	return true;
}

/* After a batch ending at event last: what is known of the chain at the hwm. */
static void snapshotter_note_chain(snapshotter_t *s, const msgpack_object *msg, uint64_t hwm_before,
				   uint64_t last)
{
	uint8_t head[LOGFILE_HASH_BYTES];
	bool has_head = snapshotter_head(msg, head);
	uint64_t hwm = ledger_last_seq(s->ledger);
	if (has_head && last == hwm) {
		memcpy(s->chain, head, LOGFILE_HASH_BYTES);
		s->chain_known = true;
	} else if (hwm != hwm_before) {
		s->chain_known = false;
	}
}

static void snapshotter_on_events(conn_t *c, const msgpack_object *msg)
{
	snapshotter_t *s = c->data;
	const msgpack_object *events = msg_get(msg, PEER_F_EVENTS);
	if (!events || events->type != MSGPACK_OBJECT_ARRAY) {
		diag_warn("events message without events: ignored");
		return;
	}
	uint64_t hwm_before = ledger_last_seq(s->ledger), last = 0;
	for (uint32_t i = 0; i < events->via.array.size && !c->closing; i++)
		last = snapshotter_apply(s, &events->via.array.ptr[i]);
	snapshotter_note_chain(s, msg, hwm_before, last);
	snapshot_maybe_take(s);
	snapshotter_send_ack(s, c);
}

static void snapshotter_on_reset(conn_t *c, const msgpack_object *msg)
{
	snapshotter_t *s = c->data;
	(void)msg;
	ledger_t *l = ledger_new();
	if (!l) {
		diag_error("out of memory resetting the state");
		exit(EXIT_TEMPORARY);
	}
	diag_warn("reset by the bus at hwm %" PRIu64 " (snapshot %" PRIu64
		 "): the state does not match the log; starting empty",
		 ledger_last_seq(s->ledger), s->snapshot_seq);
	ledger_free(s->ledger);
	s->ledger = l;
	memset(s->chain, 0, sizeof(s->chain));
	s->chain_known = true;
	s->snapshot_seq = s->base_seq = 0;
	s->epoch++;
	snapshotter_send_ack(s, c);
}

static void snapshotter_write_figures(FILE *f, void *data)
{
	const snapshotter_t *s = data;
	figures_counter(f, "esbank_snapshotter_snapshots_total", "Snapshots written.",
	                s->stat_written);
	figures_counter(f, "esbank_snapshotter_failures_total", "Snapshot writes that failed.",
	                s->stat_failed);
	figures_gauge(f, "esbank_snapshotter_snapshot_seq", "The newest snapshot's seq.",
	              (double)s->snapshot_seq);
	figures_gauge(f, "esbank_snapshotter_applied_seq", "The last event applied.",
	              (double)ledger_last_seq(s->ledger));
	if (!s->stat_written)
		return; /* no age nor duration before the first snapshot of this process */
	figures_gauge(f, "esbank_snapshotter_last_age_seconds",
	              "Time since the last snapshot was written.",
	              (double)(snapshot_wall_ms() - s->stat_last_written_ms) / 1000);
	figures_gauge(f, "esbank_snapshotter_last_duration_seconds",
	              "Time the last snapshot took to pack and write.", (double)s->stat_last_ns / 1e9);
}

/* {"t":"figures"}: the snapshotter's figures (common/figures.h). */
static void snapshotter_on_figures(conn_t *c, const msgpack_object *msg)
{
	(void)msg;
	if (figures_send(c, snapshotter_write_figures, c->data) < 0)
		diag_warn("out of memory writing the figures");
}

static const peer_handler_t snapshotter_handlers[] = {
	{ PEER_MSG_FIGURES, snapshotter_on_figures },
	{ PEER_MSG_EVENTS, snapshotter_on_events },
	{ PEER_MSG_RESET, snapshotter_on_reset },
	{ NULL, NULL },
};

static void snapshotter_session_opened(peer_server_t *bus, conn_t *c)
{
	snapshotter_t *s = bus->data;
	diag_info("bus connected; hello with hwm %" PRIu64 ", snapshot %" PRIu64,
		 ledger_last_seq(s->ledger), s->snapshot_seq);
	snapshotter_send_hello(s, c);
}

static void snapshotter_on_signal(uv_signal_t *sig, int signum)
{
	snapshotter_t *s = sig->data;
	diag_info("signal %d: stopping", signum);
	peer_stop(&s->bus); /* removes snapshotter.sock */
	uv_close((uv_handle_t *)&s->sig_term, NULL);
	uv_close((uv_handle_t *)&s->sig_int, NULL);
	uv_close((uv_handle_t *)&s->interval_timer, NULL);
	s->stopping = true;
	if (s->writing)
		diag_info("stopping once snapshot %" PRIu64 " is written", s->job.seq);
	else
		uv_stop(s->loop);
}

static int snapshotter_listen(snapshotter_t *s)
{
	uv_timer_init(s->loop, &s->interval_timer);
	s->interval_timer.data = s;
	uv_signal_init(s->loop, &s->sig_term);
	uv_signal_init(s->loop, &s->sig_int);
	s->sig_term.data = s->sig_int.data = s;
	uv_signal_start(&s->sig_term, snapshotter_on_signal, SIGTERM);
	uv_signal_start(&s->sig_int, snapshotter_on_signal, SIGINT);
	s->sock_path = config_path(s->cfg->run_dir, "snapshotter.sock");
	int rc = s->sock_path ? config_mkdirs(s->cfg->run_dir, 0700) : -ENOMEM;
	s->bus.data = s;
	s->bus.handlers = snapshotter_handlers;
	s->bus.on_open = snapshotter_session_opened;
	if (rc == 0)
		rc = peer_listen(&s->bus, s->loop, PEER_ROLE_SNAPSHOTTER, s->sock_path);
	if (rc < 0)
		diag_error("%s: %s", s->sock_path ? s->sock_path : "snapshotter.sock",
			  uv_strerror(rc));
	return rc;
}

int snapshotter_run(const snapshotter_config_t *cfg)
{
	static snapshotter_t s;
	s.cfg = cfg;
	s.loop = uv_default_loop();
	s.written_cb = snapshotter_ack_all;
	s.ledger = ledger_new();
	if (!s.ledger || snapshot_load(&s) < 0) {
		diag_error("out of memory");
		ledger_free(s.ledger);
		return EXIT_TEMPORARY;
	}
	int code = EXIT_TEMPORARY;
	if (snapshotter_listen(&s) < 0)
		goto out_ledger;
	diag_info("listening on %s; snapshot every %" PRIu64 " events", s.sock_path,
		 cfg->snapshot_every);
	uv_run(s.loop, UV_RUN_DEFAULT);
	code = 0;
out_ledger:
	free(s.sock_path);
	ledger_free(s.ledger);
	return code;
}
