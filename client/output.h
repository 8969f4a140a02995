/*
 * output.h - what the client prints: replies and events, for people (aligned
 * labels, dollars, UTC ISO-8601 dates) or as JSON (the protocol's field
 * names, amounts as integer cents, one object per line).
 *
 * All printing goes to stdout. Text that came from the server is printed for
 * people with control characters replaced by '?', and as JSON with the
 * escaping below, so a hostile or broken server cannot garble a terminal or
 * break a JSON reader.
 */
#ifndef ESBANK_CLIENT_OUTPUT_H
#define ESBANK_CLIENT_OUTPUT_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Nesting deeper than this is printed as null (a reply is two levels deep). */
#define OUTPUT_JSON_DEPTH_MAX 32
/* "2024-05-01T12:34:56.789Z" and NUL, with room for odd years. */
#define OUTPUT_TIME_MAX 40
/* Longest server string shown in one human field; longer ones are cut. */
#define OUTPUT_FIELD_MAX 512

/*
 * Writes s[0..n) as a JSON string: quotes, backslashes and control
 * characters escaped, valid UTF-8 passed through, each byte of invalid UTF-8
 * written as U+FFFD.
 */
void output_json_string(FILE *f, const char *s, size_t n);

/* Writes any msgpack object as JSON (binary data as a hex string). */
void output_json_value(FILE *f, const msgpack_object *o);

/* Writes a map as one JSON object line, leaving out the entry under skip. */
void output_json_line(const msgpack_object *map, const char *skip);

/* Formats milliseconds since the epoch as UTC ISO-8601; returns buf. */
char *output_time(int64_t ts_ms, bool with_ms, char buf[OUTPUT_TIME_MAX]);

/*
 * Copies the string under key into buf for showing to people: control
 * characters become '?', "-" stands for nil, "?" for absent or not a string.
 * Returns buf.
 */
char *output_field(const msgpack_object *map, const char *key, char buf[OUTPUT_FIELD_MAX]);

/* Formats the amount in cents under key as dollars ("?" when not an integer). */
char *output_amount(const msgpack_object *map, const char *key, char buf[OUTPUT_FIELD_MAX]);

/* Prints one "Label          value" line. */
void output_pair(const char *label, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints a get_account reply for people. */
void output_account(const msgpack_object *reply);

/*
 * Prints a status reply for people; sup (may be NULL) adds esbankd's
 * restart counts to the peers.
 */
struct runstate;
void output_status(const msgpack_object *reply, const struct runstate *sup);

/* Prints one event as one aligned line for people. */
void output_event(const msgpack_object *ev);

#endif
