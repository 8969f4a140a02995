/*
 * figures.c - the Prometheus text format of every program's figures (the
 * format is described in figures.h) and the peer message that carries it.
 */
#include "figures.h"

#include "msg.h"
#include "protocol.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

void figures_hist_init(figures_hist_t *h, const uint64_t *bounds, size_t nbounds, double scale)
{
	assert(nbounds <= FIGURES_BUCKETS_MAX && scale > 0);
	memset(h, 0, sizeof(*h));
	h->bounds = bounds;
	h->nbounds = nbounds;
	h->scale = scale;
}

void figures_hist_observe(figures_hist_t *h, uint64_t v)
{
	size_t i = 0;
	while (i < h->nbounds && v > h->bounds[i])
		i++;
	h->counts[i]++;
	h->count++;
	h->sum += v;
}

void figures_family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void figures_counter(FILE *f, const char *name, const char *help, uint64_t v)
{
	figures_family(f, name, "counter", help);
	fprintf(f, "%s %" PRIu64 "\n", name, v);
}

void figures_gauge(FILE *f, const char *name, const char *help, double v)
{
	figures_family(f, name, "gauge", help);
	fprintf(f, "%s %.17g\n", name, v);
}

void figures_histogram(FILE *f, const char *name, const char *help, const figures_hist_t *h)
{
	figures_family(f, name, "histogram", help);
	uint64_t cum = 0;
	for (size_t i = 0; i < h->nbounds; i++) {
		cum += h->counts[i];
		fprintf(f, "%s_bucket{le=\"%.6g\"} %" PRIu64 "\n", name,
		        (double)h->bounds[i] / h->scale, cum);
	}
	fprintf(f, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, h->count);
	fprintf(f, "%s_sum %.9g\n", name, (double)h->sum / h->scale);
	fprintf(f, "%s_count %" PRIu64 "\n", name, h->count);
}

/* The length of text cut to FIGURES_TEXT_BYTES_MAX at a line end. */
static size_t figures_cut(const char *text, size_t n)
{
	if (n <= FIGURES_TEXT_BYTES_MAX)
		return n;
	n = FIGURES_TEXT_BYTES_MAX;
	while (n > 0 && text[n - 1] != '\n')
		n--;
	return n;
}

int figures_send(conn_t *bus, figures_write_fn write, void *data)
{
	char *text = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&text, &n);
	if (!f)
		return -ENOMEM;
	write(f, data);
	if (fclose(f) != 0) {
		free(text);
		return -ENOMEM;
	}
	msgpack_packer *pk = conn_pack_begin(bus);
	msgpack_pack_map(pk, 2);
	msg_pack_kv_str(pk, PEER_T, PEER_MSG_FIGURES);
	msg_pack_kv_bin(pk, PEER_F_TEXT, text, figures_cut(text, n));
	conn_pack_end(bus);
	free(text);
	return 0;
}
