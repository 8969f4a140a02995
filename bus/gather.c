/*
 * gather.c - the "metrics" op: a round of "figures" to the peers, then one
 * Prometheus text to every client waiting (gather.h). The bus's own
 * families are esbank_build_info, esbank_bus_*, and esbank_restarts_total /
 * esbank_program_running from RUN/esbankd.state (written by esbankd).
 */
#include "hub.h"

#include "config.h"
#include "figures.h"
#include "protocol.h"
#include "runstate.h"
#include "version.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

int gather_init(hub_t *h, const char *run_dir)
{
	memset(&h->gather, 0, sizeof(h->gather));
	h->gather.state_path = config_path(run_dir, RUNSTATE_FILE);
	return h->gather.state_path ? 0 : -ENOMEM;
}

static void gather_put_build(FILE *f)
{
	figures_family(f, "esbank_build_info", "gauge",
	               "The version and git commit the programs were built from.");
	fprintf(f, "esbank_build_info{version=\"%s\",commit=\"%s\"} 1\n", ESBANK_VERSION,
	        ESBANK_COMMIT);
}

/* A gauge with one sample per peer, labelled peer="name". */
static void gather_put_per_peer(const hub_t *h, FILE *f, const char *name, const char *help,
                                bool answered)
{
	figures_family(f, name, "gauge", help);
	int peers = h->recovery.role != BUS_ROLE_SINGLE ? PEER_COUNT : PEER_REPLICATOR;
	for (int r = 0; r < peers; r++) {
		bool v = answered ? (h->gather.answered >> r) & 1u : peer_up(h, (peer_role_t)r);
		fprintf(f, "%s{peer=\"%s\"} %d\n", name, peer_name((peer_role_t)r), v);
	}
}

static void gather_put_bus(const hub_t *h, FILE *f)
{
	bool live = h->recovery.state == BUS_LIVE;
	figures_family(f, "esbank_bus_state", "gauge", "1 for the bus's state.");
	fprintf(f, "esbank_bus_state{state=\"live\"} %d\n", live);
	fprintf(f, "esbank_bus_state{state=\"recovering\"} %d\n", !live);
	figures_gauge(f, "esbank_bus_last_seq", "The last event's seq.",
	              (double)(live ? h->routes.last_seq : h->routes.durable_seq));
	figures_gauge(f, "esbank_bus_durable_seq", "The seq the log holds durably.",
	              (double)h->routes.durable_seq);
	figures_gauge(f, "esbank_bus_resolver_hwm",
	              "The last event the resolver applied (replay progress: up to durable_seq).",
	              (double)h->routes.resolver_hwm);
	figures_gauge(f, "esbank_bus_snapshot_seq", "The newest snapshot's seq.",
	              (double)h->snapfeed.snapshot_seq);
	figures_gauge(f, "esbank_bus_log_fault", "1 while the logger cannot write the log.",
	              h->peers.log_fault);
	figures_gauge(f, "esbank_bus_held_requests", "Requests held while recovering.",
	              (double)h->hold.held.count);
	figures_gauge(f, "esbank_bus_clients", "Clients connected to bus.sock.",
	              (double)h->clients.count);
	figures_gauge(f, "esbank_bus_uptime_seconds", "Time since the bus started.",
	              (double)(bus_now_ms() - h->started_ms) / 1000);
	if (h->recovery.role != BUS_ROLE_SINGLE) { /* docs/protocol.md, status "replication" */
		figures_gauge(f, "esbank_bus_replicated_seq", "Every event up to it is in the stream.",
		              (double)h->repl.replicated);
		figures_gauge(f, "esbank_bus_replication_fault",
		              "1 while the replicator cannot publish (commands get unavailable).",
		              repl_stalled(h));
	}
	gather_put_per_peer(h, f, "esbank_bus_peer_connected", "1 when the peer's link is up.",
	                    false);
	gather_put_per_peer(h, f, "esbank_bus_figures_answered",
	                    "1 when the peer answered this scrape's figures request.", true);
}

/* The restarts esbankd counted (nothing when the group runs without it). */
static void gather_put_restarts(const hub_t *h, FILE *f)
{
	runstate_t rs;
	runstate_read(h->gather.state_path, &rs);
	if (rs.count == 0)
		return;
	figures_family(f, "esbank_restarts_total", "counter",
	               "Processes esbankd started after a program's first.");
	for (int i = 0; i < rs.count; i++)
		fprintf(f, "esbank_restarts_total{program=\"%s\"} %" PRId64 "\n",
		        rs.children[i].name, rs.children[i].restarts);
	figures_family(f, "esbank_program_running", "gauge",
	               "1 while esbankd has the program running.");
	for (int i = 0; i < rs.count; i++)
		fprintf(f, "esbank_program_running{program=\"%s\"} %d\n", rs.children[i].name,
		        rs.children[i].running);
}

static void gather_write(FILE *f, void *data)
{
	hub_t *h = data;
	gather_put_build(f);
	gather_put_bus(h, f);
	gather_put_restarts(h, f);
	for (int r = 0; r < PEER_COUNT; r++)
		if (h->gather.text[r].p)
			fwrite(h->gather.text[r].p, 1, h->gather.text[r].n, f);
}

/* The reply of one waiting client; text NULL: unavailable (out of memory). */
static void gather_reply(hub_t *h, client_ref_t c, uint64_t id, const char *text, size_t n)
{
	if (!text) {
		clients_send_error(h, c, id, PROTO_E_UNAVAILABLE, "out of memory; retry later");
	} else {
		msg_buf_t b;
		msg_buf_init(&b);
		proto_pack_ok(&b.pk, id, 1);
		msg_pack_kv_strn(&b.pk, "text", text, n);
		clients_send(h, c, b.sb.data, b.sb.size);
		msg_buf_free(&b);
	}
	clients_done(h, c);
}

/* The round ends: every waiting client gets the text. */
static void gather_finish(hub_t *h)
{
	gather_t *g = &h->gather;
	char *text = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&text, &n);
	if (f) {
		gather_write(f, h);
		if (fclose(f) != 0) {
			free(text);
			text = NULL;
		}
	}
	for (size_t i = 0; i < g->n; i++)
		gather_reply(h, g->waiting[i].client, g->waiting[i].id, text, n);
	free(text);
	for (int r = 0; r < PEER_COUNT; r++)
		bus_bytes_free(&g->text[r]);
	g->n = 0;
	g->asked = 0;
	g->answered = 0;
	g->deadline_ms = 0;
}

static void gather_start(hub_t *h)
{
	gather_t *g = &h->gather;
	g->deadline_ms = bus_now_ms() + BUS_GATHER_WAIT_MS;
	for (int r = 0; r < PEER_COUNT; r++) {
		if (!peer_up(h, (peer_role_t)r))
			continue;
		batches_send_control(h, (peer_role_t)r, PEER_MSG_FIGURES, 0);
		g->asked |= 1u << r;
	}
}

void gather_request(hub_t *h, client_ref_t c, uint64_t id)
{
	gather_t *g = &h->gather;
	if (g->n == BUS_GATHER_WAITING_MAX) {
		clients_send_error(h, c, id, PROTO_E_UNAVAILABLE, "too many metrics requests");
		clients_done(h, c);
		return;
	}
	g->waiting[g->n].client = c;
	g->waiting[g->n].id = id;
	g->n++;
	if (!g->deadline_ms)
		gather_start(h);
	if (!g->asked)
		gather_finish(h);
}

void gather_figures(hub_t *h, peer_role_t role, const msgpack_object *msg)
{
	gather_t *g = &h->gather;
	const char *text;
	size_t n;
	if (!((g->asked >> role) & 1u) || msg_get_bin(msg, PEER_F_TEXT, &text, &n) < 0)
		return; /* late, from an earlier round, or not understood */
	bus_bytes_copy(&g->text[role], text, n);
	g->asked &= ~(1u << role);
	g->answered |= 1u << role;
	if (!g->asked)
		gather_finish(h);
}

void gather_tick(hub_t *h)
{
	if (h->gather.deadline_ms && bus_now_ms() >= h->gather.deadline_ms)
		gather_finish(h);
}
