/*
 * json.c - a msgpack object as JSON text (see reply.h). Strings are written
 * byte for byte with JSON's escapes for '"', '\\' and control bytes; the
 * protocol's strings are UTF-8, so the output is too.
 */
#include "reply.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_DEPTH_MAX 32 /* the protocol's nesting limit */
#define JSON_NUM_BYTES 32

int json_putc(json_out_t *o, char c)
{
	if (o->len == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 256;
		char *p = realloc(o->buf, cap);
		if (!p)
			return -ENOMEM;
		o->buf = p;
		o->cap = cap;
	}
	o->buf[o->len++] = c;
	return 0;
}

static int json_puts(json_out_t *o, const char *s)
{
	for (; *s; s++)
		if (json_putc(o, *s) < 0)
			return -ENOMEM;
	return 0;
}

static int json_str(json_out_t *o, const char *s, size_t n)
{
	char esc[8];
	int rc = json_putc(o, '"');

	for (size_t i = 0; rc == 0 && i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			rc = json_putc(o, '\\');
			if (rc == 0)
				rc = json_putc(o, (char)c);
		} else if (c < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			rc = json_puts(o, esc);
		} else {
			rc = json_putc(o, (char)c);
		}
	}
	return rc ? rc : json_putc(o, '"');
}

static int json_hex(json_out_t *o, const char *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	int rc = json_putc(o, '"');

	for (size_t i = 0; rc == 0 && i < n; i++) {
		rc = json_putc(o, digits[(unsigned char)p[i] >> 4]);
		if (rc == 0)
			rc = json_putc(o, digits[(unsigned char)p[i] & 15]);
	}
	return rc ? rc : json_putc(o, '"');
}

static int json_value(json_out_t *o, const msgpack_object *v, int depth);

static int json_container(json_out_t *o, const msgpack_object *v, int depth)
{
	bool map = v->type == MSGPACK_OBJECT_MAP;
	uint32_t n = map ? v->via.map.size : v->via.array.size;
	int rc = json_putc(o, map ? '{' : '[');

	for (uint32_t i = 0; rc == 0 && i < n; i++) {
		if (i > 0)
			rc = json_putc(o, ',');
		if (rc == 0 && map) {
			const msgpack_object *k = &v->via.map.ptr[i].key;
			if (k->type == MSGPACK_OBJECT_STR)
				rc = json_str(o, k->via.str.ptr, k->via.str.size);
			else
				rc = json_str(o, "?", 1);
			if (rc == 0)
				rc = json_putc(o, ':');
			if (rc == 0)
				rc = json_value(o, &v->via.map.ptr[i].val, depth + 1);
		} else if (rc == 0) {
			rc = json_value(o, &v->via.array.ptr[i], depth + 1);
		}
	}
	return rc ? rc : json_putc(o, map ? '}' : ']');
}

static int json_value(json_out_t *o, const msgpack_object *v, int depth)
{
	char num[JSON_NUM_BYTES];

	if (depth > JSON_DEPTH_MAX)
		return json_puts(o, "null");
	switch (v->type) {
	case MSGPACK_OBJECT_NIL: return json_puts(o, "null");
	case MSGPACK_OBJECT_BOOLEAN: return json_puts(o, v->via.boolean ? "true" : "false");
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		snprintf(num, sizeof(num), "%" PRIu64, v->via.u64);
		return json_puts(o, num);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		snprintf(num, sizeof(num), "%" PRId64, v->via.i64);
		return json_puts(o, num);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		snprintf(num, sizeof(num), "%.17g", v->via.f64);
		return json_puts(o, num);
	case MSGPACK_OBJECT_STR: return json_str(o, v->via.str.ptr, v->via.str.size);
	case MSGPACK_OBJECT_BIN: return json_hex(o, v->via.bin.ptr, v->via.bin.size);
	case MSGPACK_OBJECT_EXT: return json_hex(o, v->via.ext.ptr, v->via.ext.size);
	case MSGPACK_OBJECT_ARRAY:
	case MSGPACK_OBJECT_MAP: return json_container(o, v, depth);
	}
	return json_puts(o, "null");
}

int json_write(json_out_t *o, const msgpack_object *obj)
{
	return json_value(o, obj, 0);
}
