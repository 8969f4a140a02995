/*
 * routekit.h - what every REST route uses (routekit.c): answering (JSON,
 * errors, the verification page), reading the body and the query, the
 * bearer token, the scoped Idempotency-Key, dry runs, and the one bus call
 * a route makes, with its reply turned into HTTP (the status table is at
 * the top of routes.c). A function that answers 4xx itself says so and
 * returns -EINVAL (or -EACCES, or false).
 */
#ifndef ESBANK_HTTP_ROUTEKIT_H
#define ESBANK_HTTP_ROUTEKIT_H

#include "buscall.h"
#include "gateway.h"
#include "idemkey.h"
#include "server.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ROUTE_QUERY_VALUE_MAX 256
#define ROUTE_ERROR_CODE_MAX 64
#define ROUTE_MESSAGE_MAX 512
#define ROUTE_JSON_DEPTH_MAX 16
#define ROUTE_METRICS_CTYPE "text/plain; version=0.0.4; charset=utf-8"
#define ROUTE_HTML_CTYPE "text/html; charset=utf-8"
#define ROUTE_FORM_TYPE "application/x-www-form-urlencoded"
#define ROUTE_TIME_MAX 32 /* "2026-01-01T00:00:00.000Z" */
#define ROUTE_NOT_PRIMARY_RETRY_S 1
#define ROUTE_GROUP_TEXT_BYTES_MIN (64 * 1024)  /* first buffer for the group's metrics */
#define ROUTE_GROUP_TEXT_BYTES_MAX (4 << 20)    /* larger group metrics are left out */

/* req's Idempotency-Key scoped to who (idemkey.h), for the bank. */
typedef struct {
	char text[IDEMKEY_SENT_MAX + 1];
	int len; /* 0: no key */
} route_key_t;

/* Sends j (its reference is taken) as JSON. */
void respond_json(http_req_t *req, int status, json_t *j, const char *extra);

void respond_error_n(http_req_t *req, int status, const char *code, size_t cn,
                     const char *msg, size_t mn, const char *extra);

void respond_error(http_req_t *req, int status, const char *code, const char *msg);

void respond_unauthorized(http_req_t *req, const char *msg);

bool req_wants_html(const http_req_t *req);

/* Only a client that asks for JSON alone: a mail scanner's or a browser's
 * GET (no Accept, * / *, text/html) must not verify anything. */
bool req_wants_json_only(const http_req_t *req);

/* The verification result page (page.h); code is NULL or a protocol code. */
void respond_page(http_req_t *req, int status, const char *code);

/* The HTTP status for a protocol error code (the table at the top of routes.c). */
int route_error_status(const char *code);

/* Copies a string field of reply into out; false when absent or too long. */
bool reply_str(const esbank_reply_t *reply, const char *key, char *out, size_t size);

/* Whether reply says "ok": true (a reply without it is not ok). */
bool reply_ok(const esbank_reply_t *reply);

/*
 * req's dry-run bits (0: a real command), or -EINVAL: a dry_run query
 * parameter that is not 1, true, 0 or false, or a Prefer header cut short
 * (it may have asked for a dry run: the command must not run for real).
 */
int dry_mode(const http_req_t *req);

/* req's dry-run bits, or answers 400 and returns -EINVAL (dry_mode). */
int route_dry(http_req_t *req);

/* The extra header of an answer the bank gave to req (NULL: none). */
const char *dry_header(const http_req_t *req);

/* Adds "dry_run": true to r when bits ask for a dry run. */
void add_dry(esbank_request_t *r, int bits);

/*
 * Answers a failed call or an error reply (as HTML when html) and returns
 * true; returns false, answering nothing, for an ok reply. Sets code.
 */
bool reply_failed(http_req_t *req, int status, const esbank_reply_t *reply, bool html,
                  char code[ROUTE_ERROR_CODE_MAX]);

/*
 * The reply as a JSON object (libesbank's JSON text, read back by jansson),
 * or an empty object when that text is not valid JSON (a string that is not
 * UTF-8: a broken bus).
 */
json_t *reply_to_json(const esbank_reply_t *reply);

/* Whether req's query says times=ms (times as integers, not RFC 3339 text). */
bool query_times_ms(const http_req_t *req);

/* Replaces j's integer member name (ms since the epoch, not negative) by its
 * RFC 3339 text ("2026-01-01T00:00:00.000Z"); anything else is left as it is. */
void json_time_rfc3339(json_t *j, const char *name);

/* The reply's fields without "id" and "ok", as a JSON object. */
json_t *reply_fields(const esbank_reply_t *reply);

/*
 * Whether req's Content-Type is media ("application/json"), or a
 * "+json" type when media is the JSON one. An absent header counts as JSON
 * (clients that send none have always been read as JSON).
 */
bool body_type_is(const http_req_t *req, const char *media);

/* req's body as a JSON object; answers 415 or 400 and returns NULL otherwise. */
json_t *body_object(http_req_t *req);

/*
 * A string member of obj, name or else its older name (NULL: none);
 * answers 400 and returns -EINVAL when it is not one.
 */
int body_str_or(http_req_t *req, json_t *obj, const char *name, const char *old,
                const char **s, size_t *n);

int body_str(http_req_t *req, json_t *obj, const char *name, const char **s, size_t *n);

/* An integer member of obj; answers 400 and returns -EINVAL when it is not one. */
int body_int(http_req_t *req, json_t *obj, const char *name, int64_t *out);

/* The decoded value of name in the query. 0, -ENOENT, or -EINVAL. */
int query_get(const char *q, const char *name, char *out, size_t size);

/*
 * An optional whole-number query parameter. Returns 1 and sets *v when
 * present, 0 when absent; answers 400 and returns -EINVAL when malformed.
 */
int query_u64(http_req_t *req, const char *name, uint64_t *v);

/* Checks the bearer token; sets req->account, or answers 401 and returns -EACCES. */
int route_auth(gateway_t *gw, http_req_t *req);

/* Sets *k from req's header (len 0 when absent); answers 400 and returns -EINVAL. */
int route_key(http_req_t *req, idemkey_scope_t scope, const char *who, size_t who_len,
              route_key_t *k);

/* Adds the idempotency key, if there is one, to r. */
void add_key(esbank_request_t *r, const route_key_t *k);

/*
 * Sends the bus request r for req; cb answers it. On failure answers req
 * (400 or 503) and returns false.
 */
bool route_call(gateway_t *gw, http_req_t *req, const esbank_request_t *r,
                int timeout_ms, buscall_reply_cb cb);

#endif
