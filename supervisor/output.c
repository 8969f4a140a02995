/* output.c - prefixing children's output lines (see output.h). */
#include "output.h"
#include "diag.h"

#include <stdio.h>
#include <string.h>

#define OUTPUT_READ_BYTES 65536

void output_print(const char *name, const char *line, size_t n)
{
	char prefix[DIAG_PREFIX_BYTES_MAX];
	diag_prefix(diag_level_of_line(line, n), prefix, sizeof(prefix));
	fprintf(stderr, "%s%-*s | %.*s\n", prefix, OUTPUT_NAME_WIDTH, name, (int)n, line);
}

#define OUTPUT_ERROR_PREFIX "error: "

/* Prints o's pending line and remembers it when it is the one to repeat. */
static void output_line(output_t *o)
{
	output_print(o->name, o->line, o->len);
	size_t plen = strlen(OUTPUT_ERROR_PREFIX);
	bool error = o->len >= plen && memcmp(o->line, OUTPUT_ERROR_PREFIX, plen) == 0;
	if (o->len > 0 && (error || !o->last_is_error)) {
		size_t n = o->len < sizeof(o->last) - 1 ? o->len : sizeof(o->last) - 1;
		memcpy(o->last, o->line, n);
		o->last[n] = '\0';
		o->last_is_error = error;
	}
	o->len = 0;
}

static void output_flush_partial(output_t *o)
{
	if (o->len > 0)
		output_line(o);
}

/* Appends data, printing every line it completes. */
static void output_take(output_t *o, const char *data, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char ch = data[i];
		if (ch == '\n') {
			output_line(o);
			continue;
		}
		if (o->len == OUTPUT_LINE_MAX)
			output_flush_partial(o);
		o->line[o->len++] = ch;
	}
}

static void output_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char chunk[OUTPUT_READ_BYTES]; /* reads are handled one at a time */
	buf->base = chunk;
	buf->len = sizeof(chunk);
}

static void output_closed_cb(uv_handle_t *h)
{
	output_t *o = h->data;
	o->in_use = false;
	if (o->on_close)
		o->on_close(o);
}

static void output_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	output_t *o = s->data;
	if (nread > 0)
		output_take(o, buf->base, (size_t)nread);
	else if (nread < 0)
		output_close(o);
}

int output_init(output_t *o, uv_loop_t *loop, const char *name, output_cb on_close)
{
	o->name = name;
	o->len = 0;
	o->last[0] = '\0';
	o->last_is_error = false;
	o->on_close = on_close;
	int rc = uv_pipe_init(loop, &o->pipe, 0);
	o->pipe.data = o;
	o->open = o->in_use = rc == 0;
	return rc;
}

int output_start(output_t *o)
{
	return uv_read_start((uv_stream_t *)&o->pipe, output_alloc_cb, output_read_cb);
}

const char *output_last(const output_t *o)
{
	return o->last;
}

bool output_last_is_error(const output_t *o)
{
	return o->last_is_error;
}

void output_close(output_t *o)
{
	if (!o->open)
		return;
	o->open = false;
	output_flush_partial(o);
	uv_close((uv_handle_t *)&o->pipe, output_closed_cb);
}
