/*
 * reply.h - libesbank's internals for replies (not installed): making an
 * esbank_reply_t from a frame body (reply.c), and msgpack as JSON text
 * (json.c), which esbank_reply_json() and the CLI share.
 */
#ifndef ESBANK_LIB_REPLY_H
#define ESBANK_LIB_REPLY_H

#include "esbank.h"

#include <msgpack.h>
#include <stddef.h>

/* Copies body[0..len) into a fresh *r and fills its fields. 0, -ENOMEM or
 * -EBADMSG (not one msgpack map); *r holds nothing to free on failure. */
int reply_fill(esbank_reply_t *r, const char *body, size_t len);

/* For a subscription's frame {"id", "event": {...}}: makes *ev over the
 * event map. 1 when the frame holds an event, 0 when it does not (nothing to
 * free), -ENOMEM or -EBADMSG. */
int reply_event(esbank_reply_t *ev, const char *body, size_t len);

/* A growing text; buf is malloc'd, NUL-terminated only after json_putc('\0'). */
typedef struct {
	char *buf;
	size_t len;
	size_t cap;
} json_out_t;

/* Appends one byte. 0 or -ENOMEM. */
int json_putc(json_out_t *o, char c);

/* Appends o as JSON: maps (string keys; other keys as their JSON text),
 * arrays, strings (escaped; bytes kept as sent), integers, floats, bools,
 * nil as null, bin and ext as hex strings. 0 or -ENOMEM. */
int json_write(json_out_t *o, const msgpack_object *obj);

#endif
