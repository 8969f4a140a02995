/*
 * ready.c - polling RUN/bus.sock until the group is live (see ready.h).
 *
 * Wire (PROTOCOL.md): request frame = 4-byte big-endian length, then the
 * msgpack map {"op":"status","id":1}; the reply is one frame whose map has
 * "state" "live" or "recovering" and "peers", a map of role to a map with
 * "connected" true or false. Anything else (no socket yet, refused, bad
 * frame, not live, a peer not connected) just means "try again at the next
 * tick".
 */
#include "ready.h"
#include "diag.h"
#include "msg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define READY_READ_BYTES 4096

static msg_buf_t ready_request;

static void ready_build_request(void)
{
	msg_buf_init(&ready_request);
	size_t off = msg_frame_begin(&ready_request);
	msgpack_pack_map(&ready_request.pk, 2);
	msg_pack_kv_str(&ready_request.pk, "op", "status");
	msg_pack_kv_u64(&ready_request.pk, "id", 1);
	msg_frame_end(&ready_request, off);
}

static void ready_on_pipe_close(uv_handle_t *h)
{
	ready_t *r = h->data;
	frame_reader_free(&r->rd);
	frame_reader_init(&r->rd);
	r->busy = false;
}

static void ready_end_attempt(ready_t *r)
{
	if (r->busy && !uv_is_closing((uv_handle_t *)&r->pipe))
		uv_close((uv_handle_t *)&r->pipe, ready_on_pipe_close);
}

/* True when peers is a non-empty map whose every value says connected. */
static bool ready_peers_connected(const msgpack_object *peers)
{
	if (!peers || peers->type != MSGPACK_OBJECT_MAP || peers->via.map.size == 0)
		return false;
	for (uint32_t i = 0; i < peers->via.map.size; i++) {
		bool connected = false;
		const msgpack_object *peer = &peers->via.map.ptr[i].val;
		if (peer->type != MSGPACK_OBJECT_MAP ||
		    msg_get_bool(peer, "connected", &connected) < 0 || !connected)
			return false;
	}
	return true;
}

/* True when the reply body says the bus is live and every peer connected. */
static bool ready_is_live(const char *body, size_t len)
{
	msgpack_zone zone;
	msgpack_object map;
	msgpack_zone_init(&zone, 1024);
	const msgpack_object *state = NULL;
	bool live = msg_decode_map(body, len, &zone, &map) == 0 &&
	            (state = msg_get(&map, "state")) != NULL && msg_str_eq(state, "live") &&
	            ready_peers_connected(msg_get(&map, "peers"));
	msgpack_zone_destroy(&zone);
	return live;
}

static void ready_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	ready_t *r = h->data;
	size_t got = 0;
	buf->base = frame_reader_space(&r->rd, READY_READ_BYTES, &got);
	buf->len = buf->base ? got : 0;
}

static void ready_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	ready_t *r = s->data;
	const char *body;
	size_t len;
	if (nread < 0) {
		ready_end_attempt(r);
		return;
	}
	frame_reader_commit(&r->rd, (size_t)nread);
	int rc = frame_reader_next(&r->rd, &body, &len);
	if (rc == 0)
		return;
	bool live = rc > 0 && ready_is_live(body, len) && (!r->check || r->check(r));
	ready_end_attempt(r);
	if (live && !r->done) {
		r->done = true;
		uv_timer_stop(&r->timer);
		r->on_ready(r);
	}
}

static void ready_write_cb(uv_write_t *req, int status)
{
	if (status < 0)
		ready_end_attempt(req->data);
}

static void ready_connect_cb(uv_connect_t *req, int status)
{
	ready_t *r = req->data;
	if (status < 0 || r->done) {
		ready_end_attempt(r);
		return;
	}
	uv_buf_t buf = uv_buf_init(ready_request.sb.data, (unsigned)ready_request.sb.size);
	r->wreq.data = r;
	if (uv_write(&r->wreq, (uv_stream_t *)&r->pipe, &buf, 1, ready_write_cb) < 0 ||
	    uv_read_start((uv_stream_t *)&r->pipe, ready_alloc_cb, ready_read_cb) < 0)
		ready_end_attempt(r);
}

static void ready_tick(uv_timer_t *t)
{
	ready_t *r = t->data;
	uint64_t now = uv_now(r->loop);
	if (now - r->warned_ms >= READY_WARN_MS) {
		diag_warn("still waiting for the bus to be live (%llu s)",
		         (unsigned long long)((now - r->start_ms) / 1000));
		r->warned_ms = now;
	}
	if (r->busy) {
		if (now - r->attempt_ms >= READY_ATTEMPT_MS)
			ready_end_attempt(r);
		return;
	}
	if (uv_pipe_init(r->loop, &r->pipe, 0) < 0)
		return;
	r->pipe.data = r;
	r->busy = true;
	r->attempt_ms = now;
	r->creq.data = r;
	uv_pipe_connect(&r->creq, &r->pipe, r->path, ready_connect_cb);
}

int ready_start(ready_t *r, uv_loop_t *loop, const char *path, ready_check_cb check,
                ready_cb on_ready)
{
	if (!ready_request.sb.data)
		ready_build_request();
	r->path = strdup(path);
	if (!r->path)
		return -ENOMEM;
	r->loop = loop;
	r->check = check;
	r->on_ready = on_ready;
	r->busy = r->done = false;
	r->start_ms = r->warned_ms = uv_now(loop);
	frame_reader_init(&r->rd);
	uv_timer_init(loop, &r->timer);
	r->timer.data = r;
	r->started = true;
	return uv_timer_start(&r->timer, ready_tick, 0, READY_POLL_MS);
}

void ready_stop(ready_t *r)
{
	if (!r->started)
		return;
	r->started = false;
	r->done = true;
	uv_close((uv_handle_t *)&r->timer, NULL);
	if (r->busy)
		ready_end_attempt(r); /* its close callback frees the reader */
	else
		frame_reader_free(&r->rd);
	free(r->path);
	r->path = NULL;
}
