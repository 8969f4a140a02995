/*
 * figures.h - each program's figures in the Prometheus text format
 * (version 0.0.4), written once for every program that has figures: the
 * logger, the resolver, the snapshotter, the mailer and the bus. The bus
 * gathers them for the client op "metrics" (docs/protocol.md) with the peer
 * message "figures" (docs/peers.md):
 *
 *   bus -> peer  {"t":"figures"}
 *   peer -> bus  {"t":"figures","text":bin}   the peer's families, as text
 *
 * A family is "# HELP name text", "# TYPE name counter|gauge|histogram",
 * then its samples, one a line: "name{label=\"v\"} value". Every family name
 * starts with "esbank_" and the program's name, so the texts of the programs
 * can be put one after the other without two families of one name.
 *
 * The counters themselves are plain integers in each program's state,
 * bumped on the hot path with no allocation or syscall; only a scrape
 * writes text. A histogram (figures_hist_t) has fixed bucket bounds.
 */
#ifndef ESBANK_COMMON_FIGURES_H
#define ESBANK_COMMON_FIGURES_H

#include "conn.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define FIGURES_BUCKETS_MAX 16        /* finite buckets of one histogram */
#define FIGURES_TEXT_BYTES_MAX 65536  /* one program's text; more is cut at a line */

/*
 * A histogram of integer observations. bounds (ascending, nbounds of them,
 * at most FIGURES_BUCKETS_MAX) are the upper bounds of the finite buckets,
 * in the observation's unit; scale divides them (and the sum) when printed
 * (1e6 for microseconds shown as seconds). counts[i] is not cumulative.
 */
typedef struct {
	const uint64_t *bounds;
	size_t nbounds;
	double scale;
	uint64_t counts[FIGURES_BUCKETS_MAX + 1]; /* the last: above every bound */
	uint64_t count;
	uint64_t sum;
} figures_hist_t;

/* Sets h up with bounds (kept, not copied) and scale; every count 0. */
void figures_hist_init(figures_hist_t *h, const uint64_t *bounds, size_t nbounds, double scale);

/* Counts one observation v: no allocation, no syscall. */
void figures_hist_observe(figures_hist_t *h, uint64_t v);

/* Writes a counter family of one sample. */
void figures_counter(FILE *f, const char *name, const char *help, uint64_t v);

/* Writes a gauge family of one sample. */
void figures_gauge(FILE *f, const char *name, const char *help, double v);

/* Writes the HELP and TYPE lines of a family whose samples the caller writes. */
void figures_family(FILE *f, const char *name, const char *type, const char *help);

/* Writes a histogram family: name_bucket{le=...} (cumulative), _sum, _count. */
void figures_histogram(FILE *f, const char *name, const char *help, const figures_hist_t *h);

/* What a program writes of its figures into f. */
typedef void (*figures_write_fn)(FILE *f, void *data);

/*
 * Answers the bus's "figures" on bus: {"t":"figures","text":bin} with what
 * write wrote (cut at a line end after FIGURES_TEXT_BYTES_MAX). Returns 0
 * or -ENOMEM (nothing sent).
 */
int figures_send(conn_t *bus, figures_write_fn write, void *data);

#endif
