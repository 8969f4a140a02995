/*
 * metrics.h - request counters and a latency histogram for GET /metrics,
 * rendered in the Prometheus text exposition format (version 0.0.4).
 *
 * Requests are counted by route (an index into the caller's label table)
 * and by status (one of the statuses the gateway answers; anything else is
 * counted as "other").
 */
#ifndef ESBANK_HTTP_METRICS_H
#define ESBANK_HTTP_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "figures.h"

#define METRICS_ROUTES_MAX 24
#define METRICS_STATUSES 15   /* entries of metrics_statuses in metrics.c, "other" included */
#define METRICS_BUCKETS 12    /* finite histogram buckets */
#define METRICS_STATE_MAX 16

typedef struct {
	const char *const *route_labels;
	size_t nroutes;
	uint64_t requests[METRICS_ROUTES_MAX][METRICS_STATUSES];
	figures_hist_t latency; /* microseconds, shown as seconds */
} metrics_t;

/*
 * What the bus said for this scrape, plus the gateway's gauges. group is
 * the group's own text (the bus's metrics reply), or NULL when the bus did
 * not give it; it carries esbank_bus_state / _last_seq / _durable_seq, so
 * those are printed from a status reply (have_status) only without it.
 */
typedef struct {
	bool bus_connected;       /* the link to bus.sock is up */
	bool have_status;         /* a status reply arrived for this scrape */
	const char *group;        /* group_len bytes of Prometheus text, or NULL */
	size_t group_len;
	char state[METRICS_STATE_MAX]; /* "live", "recovering" */
	uint64_t last_seq;
	uint64_t durable_seq;
	uint64_t connections;     /* open HTTP connections */
	uint64_t bus_pending;     /* bus requests in flight */
} metrics_gauges_t;

/* labels[0..n) name the routes; n <= METRICS_ROUTES_MAX; labels must outlive m. */
void metrics_init(metrics_t *m, const char *const *labels, size_t n);

/* Counts one response. */
void metrics_observe(metrics_t *m, size_t route, int status, uint64_t latency_ns);

/*
 * Renders the gateway's families, then g->group as it came, into a new
 * malloc'd buffer (*out, *len; the caller frees it). Returns 0 or -ENOMEM.
 */
int metrics_render(const metrics_t *m, const metrics_gauges_t *g, char **out, size_t *len);

#endif
