/*
 * reply.c - esbank_reply_t: a reply map (or an event map) kept as the
 * msgpack bytes received, with its common fields copied out as C values, and
 * read by key or as JSON on demand (see esbank.h).
 */
#include "reply.h"

#include "msg.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPLY_ZONE_CHUNK_BYTES 4096

static void reply_copy_str(const msgpack_object *map, const char *key, char *dst,
			   size_t size)
{
	const char *s;
	size_t n;

	if (msg_get_str(map, key, &s, &n) < 0)
		return;
	if (n >= size)
		n = size - 1;
	memcpy(dst, s, n);
	dst[n] = '\0';
}

int reply_fill(esbank_reply_t *r, const char *body, size_t len)
{
	msgpack_zone zone;
	msgpack_object map;

	memset(r, 0, sizeof(*r));
	r->priv_raw = malloc(len);
	if (!r->priv_raw)
		return -ENOMEM;
	memcpy(r->priv_raw, body, len);
	r->priv_raw_bytes = len;
	if (!msgpack_zone_init(&zone, REPLY_ZONE_CHUNK_BYTES)) {
		esbank_reply_free(r);
		return -ENOMEM;
	}
	int rc = msg_decode_map(body, len, &zone, &map);
	if (rc == 0) {
		r->ok = true; /* an event, or a subscription's frame, has no "ok" */
		msg_get_u64(&map, "id", &r->id);
		msg_get_bool(&map, "ok", &r->ok);
		reply_copy_str(&map, "error", r->error, sizeof(r->error));
		reply_copy_str(&map, "message", r->message, sizeof(r->message));
		msg_get_u64(&map, "seq", &r->seq);
		r->has_balance = msg_get_i64(&map, "balance", &r->balance) == 0;
		reply_copy_str(&map, "account", r->account, sizeof(r->account));
	}
	msgpack_zone_destroy(&zone);
	if (rc < 0)
		esbank_reply_free(r);
	return rc < 0 ? -EBADMSG : 0;
}

int reply_event(esbank_reply_t *ev, const char *body, size_t len)
{
	msgpack_zone zone;
	msgpack_object map;
	msgpack_sbuffer sb;
	msgpack_packer pk;

	memset(ev, 0, sizeof(*ev));
	if (!msgpack_zone_init(&zone, REPLY_ZONE_CHUNK_BYTES))
		return -ENOMEM;
	int rc = msg_decode_map(body, len, &zone, &map) < 0 ? -EBADMSG : 0;
	const msgpack_object *e = rc == 0 ? msg_get(&map, "event") : NULL;
	if (e && e->type == MSGPACK_OBJECT_MAP) {
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		rc = msgpack_pack_object(&pk, *e) < 0 ? -ENOMEM : 0;
		if (rc == 0)
			rc = reply_fill(ev, sb.data, sb.size);
		msgpack_sbuffer_destroy(&sb);
		rc = rc < 0 ? rc : 1;
	}
	msgpack_zone_destroy(&zone);
	return rc;
}

void esbank_reply_free(esbank_reply_t *reply)
{
	free(reply->priv_raw);
	reply->priv_raw = NULL;
	reply->priv_raw_bytes = 0;
}

/* Decodes the kept bytes and hands fn the map; returns fn's result. */
static int reply_with_map(const esbank_reply_t *r,
			  int (*fn)(const msgpack_object *map, void *ctx), void *ctx)
{
	msgpack_zone zone;
	msgpack_object map;

	if (!r->priv_raw)
		return -ENOENT;
	if (!msgpack_zone_init(&zone, REPLY_ZONE_CHUNK_BYTES))
		return -ENOMEM;
	int rc = msg_decode_map(r->priv_raw, r->priv_raw_bytes, &zone, &map);
	if (rc == 0)
		rc = fn(&map, ctx);
	msgpack_zone_destroy(&zone);
	return rc;
}

typedef struct {
	const char *key;
	int64_t *i;
	bool *b;
	char *buf;
	size_t size;
} reply_get_t;

static int reply_get_int_fn(const msgpack_object *map, void *ctx)
{
	reply_get_t *g = ctx;
	const msgpack_object *o = msg_get(map, g->key);
	if (!o || o->type == MSGPACK_OBJECT_NIL)
		return -ENOENT;
	return msg_get_i64(map, g->key, g->i);
}

static int reply_get_bool_fn(const msgpack_object *map, void *ctx)
{
	reply_get_t *g = ctx;
	const msgpack_object *o = msg_get(map, g->key);
	if (!o || o->type == MSGPACK_OBJECT_NIL)
		return -ENOENT;
	return msg_get_bool(map, g->key, g->b);
}

static int reply_get_str_fn(const msgpack_object *map, void *ctx)
{
	reply_get_t *g = ctx;
	const char *s;
	size_t n;
	const msgpack_object *o = msg_get(map, g->key);
	if (!o || o->type == MSGPACK_OBJECT_NIL)
		return -ENOENT;
	int rc = msg_get_str(map, g->key, &s, &n);
	if (rc < 0)
		return rc;
	if (n >= g->size)
		return -ENOSPC;
	memcpy(g->buf, s, n);
	g->buf[n] = '\0';
	return 0;
}

int esbank_reply_get_int(const esbank_reply_t *reply, const char *key, int64_t *value)
{
	reply_get_t g = { .key = key, .i = value };
	return reply_with_map(reply, reply_get_int_fn, &g);
}

int esbank_reply_get_bool(const esbank_reply_t *reply, const char *key, bool *value)
{
	reply_get_t g = { .key = key, .b = value };
	return reply_with_map(reply, reply_get_bool_fn, &g);
}

int esbank_reply_get_str(const esbank_reply_t *reply, const char *key, char *buf, size_t size)
{
	reply_get_t g = { .key = key, .buf = buf, .size = size };
	if (size == 0)
		return -ENOSPC;
	return reply_with_map(reply, reply_get_str_fn, &g);
}

static int reply_json_fn(const msgpack_object *map, void *ctx)
{
	return json_write(ctx, map);
}

char *esbank_reply_json(const esbank_reply_t *reply)
{
	json_out_t out = { 0 };

	if (reply_with_map(reply, reply_json_fn, &out) < 0 || json_putc(&out, '\0') < 0) {
		free(out.buf);
		return NULL;
	}
	return out.buf;
}
