/*
 * async.c - the async API of esbank.h: one bus.sock link on the caller's
 * libuv loop, requests written as they come (pipelined), replies matched to
 * calls by id.
 *
 * Calls in flight are kept in a FIFO list in the order sent. Replies mostly
 * come in that order, so the match is usually the list's head; an id-0
 * reply (the server could not read a frame) answers the oldest call, as in
 * wire.c. A subscription stays in the list after its reply and takes every
 * frame with its id that has an "event".
 *
 * A call made with a timeout carries a deadline (loop time); an unref'd
 * timer walks the list every ESBANK_ASYNC_TICK_MS and answers the calls past
 * theirs -ETIMEDOUT. A cancelled or timed-out call leaves the list, so its
 * late reply matches nothing and is dropped. The link is freed once both
 * handles (pipe, timer) are closed.
 */
#include "esbank.h"
#include "reply.h"
#include "reqpack.h"
#include "wire.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ASYNC_READ_BYTES 65536

#define ASYNC_NO_DEADLINE UINT64_MAX

typedef struct async_call {
	uint64_t id;
	uint64_t deadline_ms; /* loop time; ASYNC_NO_DEADLINE: none */
	esbank_reply_cb cb;
	esbank_event_cb event_cb; /* subscriptions only */
	bool subscribed;          /* its reply said ok: events follow */
	void *arg;
	struct async_call *next;
} async_call_t;

typedef struct {
	uv_write_t req;
	msg_buf_t buf;
} async_write_t;

struct esbank_async {
	uv_pipe_t pipe;
	uv_timer_t tick;
	int handles_open; /* pipe and timer not yet closed */
	esbank_lost_cb lost_cb;
	void *lost_arg;
	frame_reader_t reader;
	uint64_t next_id;
	async_call_t *head, *tail;
	size_t inflight;  /* calls in the list not yet answered */
	bool down;        /* the link dropped or is closing: no more calls */
	bool closing;     /* esbank_async_close() was called */
};

static void async_fail_all(esbank_async_t *a, int status)
{
	async_call_t *c = a->head;

	a->head = a->tail = NULL;
	a->inflight = 0;
	while (c) {
		async_call_t *next = c->next;
		if (!c->subscribed)
			c->cb(a, status, NULL, c->arg);
		free(c);
		c = next;
	}
}

static void async_closed(uv_handle_t *h)
{
	esbank_async_t *a = h->data;
	if (--a->handles_open > 0)
		return;
	async_fail_all(a, -ECANCELED);
	frame_reader_free(&a->reader);
	free(a);
}

void esbank_async_close(esbank_async_t *a)
{
	if (a->closing)
		return;
	a->closing = a->down = true;
	uv_close((uv_handle_t *)&a->tick, async_closed);
	uv_close((uv_handle_t *)&a->pipe, async_closed);
}

/* The link is gone: every call still waiting learns it now. */
static void async_down(esbank_async_t *a, int status)
{
	if (a->down)
		return;
	a->down = true;
	uv_read_stop((uv_stream_t *)&a->pipe);
	async_fail_all(a, status);
	if (a->lost_cb && !a->closing)
		a->lost_cb(a, status, a->lost_arg);
}

/* Takes c, after prev, out of the list (the caller frees it). */
static void async_unlink(esbank_async_t *a, async_call_t *prev, async_call_t *c)
{
	if (prev)
		prev->next = c->next;
	else
		a->head = c->next;
	if (a->tail == c)
		a->tail = prev;
}

/* The reply to call c: a subscription that was accepted stays listed. */
static void async_answer(esbank_async_t *a, async_call_t *prev, async_call_t *c,
			 const esbank_reply_t *r)
{
	a->inflight--;
	if (c->event_cb && r->ok) {
		c->subscribed = true;
		c->cb(a, 0, r, c->arg);
		return;
	}
	async_unlink(a, prev, c);
	c->cb(a, 0, r, c->arg);
	free(c);
}

/* Hands one frame to its call; -EBADMSG when it is not a map with an id. */
static int async_dispatch(esbank_async_t *a, const char *body, size_t len)
{
	esbank_reply_t r, ev;
	async_call_t *prev = NULL, *c = a->head;

	int rc = reply_fill(&r, body, len);
	if (rc < 0)
		return rc;
	while (c && c->id != r.id && !(r.id == 0 && !c->subscribed)) {
		prev = c;
		c = c->next;
	}
	if (c && c->subscribed && reply_event(&ev, body, len) == 1) {
		c->event_cb(a, &ev, c->arg);
		esbank_reply_free(&ev);
	} else if (c && !c->subscribed) {
		async_answer(a, prev, c, &r);
	}
	esbank_reply_free(&r);
	return 0;
}

static void async_alloc(uv_handle_t *h, size_t want, uv_buf_t *buf)
{
	esbank_async_t *a = h->data;
	size_t got = 0;
	char *p = frame_reader_space(&a->reader, ASYNC_READ_BYTES, &got);
	*buf = uv_buf_init(p, p ? (unsigned)got : 0);
}

static void async_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	esbank_async_t *a = s->data;
	const char *body;
	size_t len;
	int rc = 0;

	if (n < 0) {
		async_down(a, n == UV_EOF ? -ECONNRESET : (int)n);
		return;
	}
	frame_reader_commit(&a->reader, (size_t)n);
	while (!a->down && (rc = frame_reader_next(&a->reader, &body, &len)) == 1)
		rc = async_dispatch(a, body, len);
	if (rc < 0)
		async_down(a, rc);
}

int esbank_async_connect(uv_loop_t *loop, const char *where, esbank_async_t **out,
			 char *why, size_t why_size)
{
	wire_t w;
	esbank_async_t *a = calloc(1, sizeof(*a));

	*out = NULL;
	if (!a)
		return -ENOMEM;
	int rc = wire_open(&w, where, 1, why, why_size);
	int fd = w.fd;
	w.fd = -1; /* ours from here, then the link's */
	wire_close(&w);
	free(a);
	if (rc < 0) {
		if (fd >= 0)
			close(fd);
		return rc;
	}
	return esbank_async_attach(loop, fd, out);
}

/*
 * Answers -ETIMEDOUT to every call past its deadline. The expired calls are
 * taken out of the list first, so a callback may call, cancel or close.
 */
static void async_tick(uv_timer_t *t)
{
	esbank_async_t *a = t->data;
	uint64_t now = uv_now(t->loop);
	async_call_t *prev = NULL, *c = a->head, *expired = NULL;

	while (c) {
		async_call_t *next = c->next;
		if (!c->subscribed && c->deadline_ms <= now) {
			async_unlink(a, prev, c);
			a->inflight--;
			c->next = expired;
			expired = c;
		} else {
			prev = c;
		}
		c = next;
	}
	while (expired) {
		c = expired;
		expired = c->next;
		c->cb(a, -ETIMEDOUT, NULL, c->arg);
		free(c);
	}
}

int esbank_async_attach(uv_loop_t *loop, int fd, esbank_async_t **out)
{
	esbank_async_t *a = calloc(1, sizeof(*a));

	*out = NULL;
	int rc = a ? uv_pipe_init(loop, &a->pipe, 0) : -ENOMEM;
	if (rc < 0) {
		close(fd);
		free(a);
		return rc;
	}
	uv_timer_init(loop, &a->tick);
	uv_unref((uv_handle_t *)&a->tick); /* a deadline alone keeps no loop alive */
	a->pipe.data = a->tick.data = a;
	a->handles_open = 2;
	a->next_id = 1;
	frame_reader_init(&a->reader);
	rc = uv_pipe_open(&a->pipe, fd);
	if (rc < 0)
		close(fd);
	else
		rc = uv_read_start((uv_stream_t *)&a->pipe, async_alloc, async_read);
	if (rc == 0)
		rc = uv_timer_start(&a->tick, async_tick, ESBANK_ASYNC_TICK_MS,
				    ESBANK_ASYNC_TICK_MS);
	if (rc < 0) {
		esbank_async_close(a);
		return rc;
	}
	*out = a;
	return 0;
}

void esbank_async_on_lost(esbank_async_t *a, esbank_lost_cb cb, void *arg)
{
	a->lost_cb = cb;
	a->lost_arg = arg;
}

static void async_written(uv_write_t *req, int status)
{
	async_write_t *w = req->data;
	/* The request may hold a password: leave no copy of it behind. */
	explicit_bzero(w->buf.sb.data, w->buf.sb.size);
	msg_buf_free(&w->buf);
	free(w);
}

/* Packs and queues one request with the next id. */
static int async_write(esbank_async_t *a, const esbank_request_t *req, uint64_t id)
{
	async_write_t *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	msg_buf_init(&w->buf);
	size_t off = msg_frame_begin(&w->buf);
	msgpack_pack_map(&w->buf.pk, 2 + req->nfields);
	msg_pack_kv_str(&w->buf.pk, "op", req->op);
	msg_pack_kv_u64(&w->buf.pk, "id", id);
	libreq_pack_fields(&w->buf.pk, req);
	msg_frame_end(&w->buf, off);
	int rc = w->buf.sb.size - FRAME_HEADER_BYTES > FRAME_BODY_MAX ? -EMSGSIZE : 0;
	uv_buf_t b = uv_buf_init(w->buf.sb.data, (unsigned)w->buf.sb.size);
	w->req.data = w;
	if (rc == 0)
		rc = uv_write(&w->req, (uv_stream_t *)&a->pipe, &b, 1, async_written);
	if (rc < 0)
		async_written(&w->req, rc);
	return rc;
}

static int async_start(esbank_async_t *a, const esbank_request_t *req, int timeout_ms,
		       esbank_event_cb event_cb, esbank_reply_cb cb, void *arg, uint64_t *id)
{
	assert(cb);
	if (a->down)
		return -ENOTCONN;
	if (a->inflight >= ESBANK_ASYNC_INFLIGHT_MAX ||
	    uv_stream_get_write_queue_size((uv_stream_t *)&a->pipe) > ESBANK_ASYNC_QUEUED_BYTES_MAX)
		return -ENOBUFS;
	async_call_t *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	*c = (async_call_t){ .id = a->next_id++, .cb = cb, .event_cb = event_cb, .arg = arg,
			     .deadline_ms = ASYNC_NO_DEADLINE };
	if (timeout_ms >= 0)
		c->deadline_ms = uv_now(a->pipe.loop) + (uint64_t)timeout_ms;
	int rc = async_write(a, req, c->id);
	if (rc < 0) {
		free(c);
		return rc;
	}
	if (a->tail)
		a->tail->next = c;
	else
		a->head = c;
	a->tail = c;
	a->inflight++;
	if (id)
		*id = c->id;
	return 0;
}

int esbank_async_call(esbank_async_t *a, const esbank_request_t *req, esbank_reply_cb cb,
		      void *arg)
{
	return async_start(a, req, -1, NULL, cb, arg, NULL);
}

int esbank_async_call_timed(esbank_async_t *a, const esbank_request_t *req, int timeout_ms,
			    esbank_reply_cb cb, void *arg, uint64_t *id)
{
	return async_start(a, req, timeout_ms, NULL, cb, arg, id);
}

void esbank_async_cancel(esbank_async_t *a, uint64_t id)
{
	async_call_t *prev = NULL, *c = a->head;

	while (c && c->id != id) {
		prev = c;
		c = c->next;
	}
	if (!c)
		return;
	async_unlink(a, prev, c);
	if (!c->subscribed)
		a->inflight--;
	free(c);
}

int esbank_async_subscribe(esbank_async_t *a, uint64_t from, esbank_event_cb event_cb,
			   esbank_reply_cb cb, void *arg)
{
	esbank_request_t req = { .op = "subscribe" };

	assert(event_cb);
	if (from)
		req.fields[req.nfields++] = (esbank_field_t){ .name = "from", .num = (int64_t)from };
	return async_start(a, &req, -1, event_cb, cb, arg, NULL);
}

size_t esbank_async_inflight(const esbank_async_t *a)
{
	return a->inflight;
}
