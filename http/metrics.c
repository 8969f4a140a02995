/*
 * metrics.c - the gateway's counters and latency histogram, and their
 * Prometheus text (written with common/figures.h, as every program's is).
 *
 * Output (text/plain; version=0.0.4), one sample a line:
 *   esbank_http_requests_total{route="/api/login",status="401"} 3
 *   esbank_http_request_duration_seconds_bucket{le="0.005"} 17   (cumulative)
 *   esbank_http_request_duration_seconds_sum / _count
 *   esbank_http_connections, esbank_bus_pending_requests (gauges)
 *   esbank_bus_connected 0|1, esbank_bus_up 0|1 (the bus answered this scrape),
 *   esbank_bus_state{state="live"} 1, esbank_bus_last_seq, esbank_bus_durable_seq
 *     (from a status reply, only when the group's text is missing)
 * then the group's text (the bus's metrics reply: esbank_build_info,
 * esbank_bus_*, esbank_logger_*, ...), which names none of the families
 * above but those three. Only counters that are not zero are printed.
 */
#include "metrics.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int metrics_statuses[METRICS_STATUSES] = {
	200, 400, 401, 404, 405, 408, 413, 414, 429, 431, 500, 502, 503, 504, 0,
};

/* Upper bounds of the finite buckets, in microseconds. */
static const uint64_t metrics_bucket_us[METRICS_BUCKETS] = {
	1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
	10000000,
};

void metrics_init(metrics_t *m, const char *const *labels, size_t n)
{
	assert(n <= METRICS_ROUTES_MAX);
	memset(m, 0, sizeof(*m));
	m->route_labels = labels;
	m->nroutes = n;
	figures_hist_init(&m->latency, metrics_bucket_us, METRICS_BUCKETS, 1e6);
}

static size_t metrics_status_index(int status)
{
	for (size_t i = 0; i + 1 < METRICS_STATUSES; i++)
		if (metrics_statuses[i] == status)
			return i;
	return METRICS_STATUSES - 1;
}

void metrics_observe(metrics_t *m, size_t route, int status, uint64_t latency_ns)
{
	if (route >= m->nroutes)
		route = 0;
	m->requests[route][metrics_status_index(status)]++;
	figures_hist_observe(&m->latency, latency_ns / 1000);
}

static void metrics_put_requests(const metrics_t *m, FILE *f)
{
	figures_family(f, "esbank_http_requests_total", "counter",
	               "HTTP requests answered, by route and status.");
	for (size_t r = 0; r < m->nroutes; r++) {
		for (size_t s = 0; s < METRICS_STATUSES; s++) {
			if (!m->requests[r][s])
				continue;
			char st[16];
			if (metrics_statuses[s])
				snprintf(st, sizeof(st), "%d", metrics_statuses[s]);
			else
				snprintf(st, sizeof(st), "other");
			fprintf(f,
			        "esbank_http_requests_total{route=\"%s\",status=\"%s\"} %" PRIu64
			        "\n", m->route_labels[r], st, m->requests[r][s]);
		}
	}
}

static void metrics_put_gauges(const metrics_gauges_t *g, FILE *f)
{
	figures_gauge(f, "esbank_http_connections", "Open HTTP connections.", g->connections);
	figures_gauge(f, "esbank_bus_pending_requests", "Requests sent to the bus, not answered.",
	              g->bus_pending);
	figures_gauge(f, "esbank_bus_connected", "1 when the link to bus.sock is up.",
	              g->bus_connected);
	figures_gauge(f, "esbank_bus_up", "1 when the bus answered this scrape.",
	              g->have_status || g->group);
	if (!g->have_status || g->group)
		return; /* the group's text has them */
	figures_family(f, "esbank_bus_state", "gauge", "The bus's state from its status reply.");
	fprintf(f, "esbank_bus_state{state=\"live\"} %d\n", strcmp(g->state, "live") == 0);
	fprintf(f, "esbank_bus_state{state=\"recovering\"} %d\n",
	        strcmp(g->state, "recovering") == 0);
	figures_gauge(f, "esbank_bus_last_seq", "Last sequence number the bus reported.",
	              g->last_seq);
	figures_gauge(f, "esbank_bus_durable_seq", "Durable sequence number the bus reported.",
	              g->durable_seq);
}

int metrics_render(const metrics_t *m, const metrics_gauges_t *g, char **out, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	if (!f)
		return -ENOMEM;
	metrics_put_requests(m, f);
	figures_histogram(f, "esbank_http_request_duration_seconds",
	                  "Time from the first byte of a request to its response.", &m->latency);
	metrics_put_gauges(g, f);
	if (g->group)
		fwrite(g->group, 1, g->group_len, f);
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*out = buf;
	*len = n;
	return 0;
}
