/*
 * routekit.c - what every REST route uses: responses, protocol replies, dry
 * runs, input, the token, keys and the bus call (routekit.h).
 */
#include "routekit.h"

#include "diag.h"
#include "page.h"
#include "token.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- responses ---- */

/* Sends j (its reference is taken) as JSON. */
void respond_json(http_req_t *req, int status, json_t *j, const char *extra)
{
	char *text = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	json_decref(j);
	if (!text) {
		static const char oom[] = "{\"error\":\"internal\",\"message\":\"out of memory\"}";
		http_respond(req, 500, "application/json", oom, sizeof(oom) - 1, NULL);
		return;
	}
	http_respond(req, status, "application/json", text, strlen(text), extra);
	free(text);
}

void respond_error_n(http_req_t *req, int status, const char *code, size_t cn,
                     const char *msg, size_t mn, const char *extra)
{
	json_t *m = json_stringn(msg, mn);
	json_t *j = json_object();
	json_object_set_new(j, "error", json_stringn(code, cn));
	json_object_set_new(j, "message", m ? m : json_string("(not UTF-8)"));
	respond_json(req, status, j, extra);
}

void respond_error(http_req_t *req, int status, const char *code, const char *msg)
{
	respond_error_n(req, status, code, strlen(code), msg, strlen(msg), NULL);
}

void respond_unauthorized(http_req_t *req, const char *msg)
{
	static const char code[] = "unauthorized";
	respond_error_n(req, 401, code, sizeof(code) - 1, msg, strlen(msg),
	                "WWW-Authenticate: Bearer\r\n");
}

bool req_wants_html(const http_req_t *req)
{
	return req->accept.present && strcasestr(req->accept.value, "text/html") != NULL;
}

/* Only a client that asks for JSON alone: a mail scanner's or a browser's
 * GET (no Accept, * / *, text/html) must not verify anything. */
bool req_wants_json_only(const http_req_t *req)
{
	return req->accept.present && strcasestr(req->accept.value, "application/json") &&
	       !req_wants_html(req);
}

/* The verification result page (page.h); code is NULL or a protocol code. */
void respond_page(http_req_t *req, int status, const char *code)
{
	char page[PAGE_BYTES_MAX];
	int n = page_verify_result(page, code);
	if (n < 0) {
		respond_error(req, 500, "internal", "the page does not fit");
		return;
	}
	http_respond(req, status, ROUTE_HTML_CTYPE, page, (size_t)n, NULL);
}

/* ---- protocol replies ---- */

/* The HTTP status for a protocol error code (the table at the top). */
int route_error_status(const char *code)
{
	static const struct {
		const char *code;
		int status;
	} map[] = {
		{ "unavailable", 503 },       { "overloaded", 503 },
		{ "not_primary", 503 },       { "internal", 500 },
		{ "auth_failed", 401 },       { "not_found", 404 },
		{ "already_exists", 409 },    { "already_verified", 409 },
		{ "key_conflict", 409 },      { "insufficient_funds", 422 },
		{ "same_account", 422 },      { "invalid_amount", 422 },
		{ "not_verified", 422 },      { "wrong_code", 422 },
		{ "balance_not_zero", 409 },  { "already_erased", 409 },
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(code, map[i].code) == 0)
			return map[i].status;
	return 400;
}

/* Copies a string field of reply into out; false when absent or too long. */
bool reply_str(const esbank_reply_t *reply, const char *key, char *out, size_t size)
{
	return esbank_reply_get_str(reply, key, out, size) == 0;
}

/* Whether reply says "ok": true (a reply without it is not ok). */
bool reply_ok(const esbank_reply_t *reply)
{
	bool ok = false;
	return esbank_reply_get_bool(reply, "ok", &ok) == 0 && ok;
}

/* 503 not_primary, naming the primary group (a string, or null) as the bus did. */
static void respond_not_primary(http_req_t *req, const esbank_reply_t *reply, const char *msg)
{
	char primary[ROUTE_MESSAGE_MAX];
	json_t *j = json_object();
	json_object_set_new(j, "error", json_string("not_primary"));
	json_t *m = json_string(msg);
	json_object_set_new(j, "message", m ? m : json_string("(not UTF-8)"));
	json_t *p = reply_str(reply, "primary", primary, sizeof(primary)) ? json_string(primary)
	                                                                  : NULL;
	json_object_set_new(j, "primary", p ? p : json_null());
	char extra[48];
	snprintf(extra, sizeof(extra), "Retry-After: %d\r\n", ROUTE_NOT_PRIMARY_RETRY_S);
	respond_json(req, 503, j, extra);
}

/* ---- dry runs ---- */

/* How a command asks to be a dry run (bits): ?dry_run=1, Prefer: dry-run. */
#define ROUTE_DRY_QUERY 1
#define ROUTE_DRY_PREFER 2
#define ROUTE_PREFERENCE_APPLIED "Preference-Applied: dry-run\r\n"

/*
 * Whether h, a Prefer header (RFC 7240: preferences separated by commas,
 * each a token with an optional "=value" and ";parameters"), holds dry-run.
 */
static bool prefer_dry_run(const http_header_t *h)
{
	const char *p = h->value;
	if (!h->present)
		return false;
	while (*p) {
		p += strspn(p, " \t,");
		size_t n = strcspn(p, ",;= \t");
		if (n == 7 && strncasecmp(p, "dry-run", 7) == 0)
			return true;
		p += strcspn(p, ",");
	}
	return false;
}

/*
 * req's dry-run bits (0: a real command), or -EINVAL: a dry_run query
 * parameter that is not 1, true, 0 or false, or a Prefer header cut short
 * (it may have asked for a dry run: the command must not run for real).
 */
int dry_mode(const http_req_t *req)
{
	char v[8];
	int bits = 0;
	int rc = query_get(req->query, "dry_run", v, sizeof(v));
	if (rc == 0 && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0))
		bits |= ROUTE_DRY_QUERY;
	else if (rc != -ENOENT && (rc < 0 || (strcmp(v, "0") != 0 && strcmp(v, "false") != 0)))
		return -EINVAL;
	if (req->prefer.too_long)
		return -EINVAL;
	if (prefer_dry_run(&req->prefer))
		bits |= ROUTE_DRY_PREFER;
	return bits;
}

/* req's dry-run bits, or answers 400 and returns -EINVAL (dry_mode). */
int route_dry(http_req_t *req)
{
	int bits = dry_mode(req);
	if (bits < 0)
		respond_error(req, 400, "bad_request",
		              req->prefer.too_long ? "the Prefer header is too long"
		                                   : "query parameter dry_run must be 1, true, 0 or false");
	return bits;
}

/* The extra header of an answer the bank gave to req (NULL: none). */
const char *dry_header(const http_req_t *req)
{
	int bits = dry_mode(req);
	return bits > 0 && (bits & ROUTE_DRY_PREFER) ? ROUTE_PREFERENCE_APPLIED : NULL;
}

/* Adds "dry_run": true to r when bits ask for a dry run. */
void add_dry(esbank_request_t *r, int bits)
{
	if (bits > 0)
		esbank_req_add_bool(r, "dry_run", true);
}

/* The bank's error reply to a dry run: {"error","message","dry_run": true}. */
static void respond_dry_error(http_req_t *req, int status, const char *code, const char *msg)
{
	json_t *m = json_string(msg);
	json_t *j = json_object();
	json_object_set_new(j, "error", json_string(code));
	json_object_set_new(j, "message", m ? m : json_string("(not UTF-8)"));
	json_object_set_new(j, "dry_run", json_true());
	respond_json(req, status, j, dry_header(req));
}

/*
 * Answers a failed call or an error reply (as HTML when html) and returns
 * true; returns false, answering nothing, for an ok reply. Sets code.
 */
bool reply_failed(http_req_t *req, int status, const esbank_reply_t *reply, bool html,
                  char code[ROUTE_ERROR_CODE_MAX])
{
	char msg[ROUTE_MESSAGE_MAX] = "";
	if (status == -ETIMEDOUT) {
		snprintf(code, ROUTE_ERROR_CODE_MAX, "timeout");
		snprintf(msg, sizeof(msg), "the bank did not answer in time");
	} else if (status < 0) {
		snprintf(code, ROUTE_ERROR_CODE_MAX, "unavailable");
		snprintf(msg, sizeof(msg), "lost the connection to the bank; retry");
	} else if (reply_ok(reply)) {
		return false;
	} else {
		if (!reply_str(reply, "error", code, ROUTE_ERROR_CODE_MAX))
			snprintf(code, ROUTE_ERROR_CODE_MAX, "internal");
		reply_str(reply, "message", msg, sizeof(msg));
	}
	int http = status == -ETIMEDOUT ? 504 : status < 0 ? 503 : route_error_status(code);
	if (html)
		respond_page(req, http, code);
	else if (status == 0 && strcmp(code, "not_primary") == 0)
		respond_not_primary(req, reply, msg);
	else if (status == 0 && dry_mode(req) > 0)
		respond_dry_error(req, http, code, msg);
	else
		respond_error_n(req, http, code, strlen(code), msg, strlen(msg), NULL);
	return true;
}

/*
 * The reply as a JSON object (libesbank's JSON text, read back by jansson),
 * or an empty object when that text is not valid JSON (a string that is not
 * UTF-8: a broken bus).
 */
json_t *reply_to_json(const esbank_reply_t *reply)
{
	char *text = esbank_reply_json(reply);
	json_t *j = text ? json_loads(text, 0, NULL) : NULL;
	free(text);
	if (!json_is_object(j)) {
		json_decref(j);
		j = json_object();
	}
	return j;
}

/* The reply's fields without "id" and "ok", as a JSON object. */
json_t *reply_fields(const esbank_reply_t *reply)
{
	json_t *j = reply_to_json(reply);
	json_object_del(j, "id");
	json_object_del(j, "ok");
	return j;
}

/* ---- input ---- */

/*
 * Whether req's Content-Type is media ("application/json"), or a
 * "+json" type when media is the JSON one. An absent header counts as JSON
 * (clients that send none have always been read as JSON).
 */
bool body_type_is(const http_req_t *req, const char *media)
{
	const http_header_t *h = &req->content_type;
	if (!h->present)
		return strcmp(media, "application/json") == 0;
	size_t n = strcspn(h->value, "; \t");
	size_t m = strlen(media);
	if (n == m && strncasecmp(h->value, media, m) == 0)
		return true;
	return strcmp(media, "application/json") == 0 && n >= 5 &&
	       strncasecmp(h->value + n - 5, "+json", 5) == 0;
}

/* req's body as a JSON object; answers 415 or 400 and returns NULL otherwise. */
json_t *body_object(http_req_t *req)
{
	json_error_t err;
	if (!body_type_is(req, "application/json")) {
		respond_error(req, 415, "unsupported_media_type",
		              "the body must be JSON (Content-Type: application/json)");
		return NULL;
	}
	if (req->body_len == 0) {
		respond_error(req, 400, "bad_request", "a JSON object body is required");
		return NULL;
	}
	json_t *j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &err);
	if (!j) {
		char msg[ROUTE_MESSAGE_MAX];
		snprintf(msg, sizeof(msg), "malformed JSON: %s", err.text);
		respond_error(req, 400, "bad_request", msg);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		respond_error(req, 400, "bad_request", "the body must be a JSON object");
		return NULL;
	}
	return j;
}

/*
 * A string member of obj, name or else its older name (NULL: none);
 * answers 400 and returns -EINVAL when it is not one.
 */
int body_str_or(http_req_t *req, json_t *obj, const char *name, const char *old,
                const char **s, size_t *n)
{
	json_t *v = json_object_get(obj, name);
	if (!v && old)
		v = json_object_get(obj, old);
	if (!json_is_string(v)) {
		char msg[128];
		snprintf(msg, sizeof(msg), "\"%s\" must be a string", name);
		respond_error(req, 400, "bad_request", msg);
		return -EINVAL;
	}
	*s = json_string_value(v);
	*n = json_string_length(v);
	return 0;
}

int body_str(http_req_t *req, json_t *obj, const char *name, const char **s, size_t *n)
{
	return body_str_or(req, obj, name, NULL, s, n);
}

/* An integer member of obj; answers 400 and returns -EINVAL when it is not one. */
int body_int(http_req_t *req, json_t *obj, const char *name, int64_t *out)
{
	json_t *v = json_object_get(obj, name);
	if (!json_is_integer(v)) {
		char msg[128];
		snprintf(msg, sizeof(msg), "\"%s\" must be an integer (cents)", name);
		respond_error(req, 400, "bad_request", msg);
		return -EINVAL;
	}
	*out = (int64_t)json_integer_value(v);
	return 0;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* URL-decodes s[0..n) into out. Returns 0 or -EINVAL (bad escape, NUL, too long). */
static int url_decode(const char *s, size_t n, char *out, size_t size)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];
		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			if (i + 2 >= n || hex_value(s[i + 1]) < 0 || hex_value(s[i + 2]) < 0)
				return -EINVAL;
			c = hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]);
			i += 2;
		}
		if (c == 0 || o + 1 >= size)
			return -EINVAL;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

/* The decoded value of name in the query. 0, -ENOENT, or -EINVAL. */
int query_get(const char *q, const char *name, char *out, size_t size)
{
	size_t nl = strlen(name);
	while (*q) {
		const char *amp = strchr(q, '&');
		size_t seg = amp ? (size_t)(amp - q) : strlen(q);
		if (seg >= nl && memcmp(q, name, nl) == 0 && (seg == nl || q[nl] == '=')) {
			const char *v = seg == nl ? q + nl : q + nl + 1;
			return url_decode(v, seg - (size_t)(v - q), out, size);
		}
		q += seg + (amp ? 1 : 0);
	}
	return -ENOENT;
}

/*
 * An optional whole-number query parameter. Returns 1 and sets *v when
 * present, 0 when absent; answers 400 and returns -EINVAL when malformed.
 */
int query_u64(http_req_t *req, const char *name, uint64_t *v)
{
	char buf[ROUTE_QUERY_VALUE_MAX];
	int rc = query_get(req->query, name, buf, sizeof(buf));
	if (rc == -ENOENT)
		return 0;
	size_t n = rc == 0 ? strlen(buf) : 0;
	bool digits = n > 0 && n <= 12;
	for (size_t i = 0; digits && i < n; i++)
		digits = buf[i] >= '0' && buf[i] <= '9';
	if (!digits) {
		char msg[128];
		snprintf(msg, sizeof(msg), "query parameter %s must be a whole number", name);
		respond_error(req, 400, "bad_request", msg);
		return -EINVAL;
	}
	*v = strtoull(buf, NULL, 10);
	return 1;
}

/* Checks the bearer token; sets req->account, or answers 401 and returns -EACCES. */
int route_auth(gateway_t *gw, http_req_t *req)
{
	const http_header_t *h = &req->authorization;
	if (!h->present || h->too_long || h->len < 7 || strncasecmp(h->value, "Bearer ", 7) != 0) {
		respond_unauthorized(req, "a bearer token is required (POST /api/login)");
		return -EACCES;
	}
	const char *tok = h->value + 7;
	while (*tok == ' ')
		tok++;
	size_t n = strlen(tok);
	while (n > 0 && tok[n - 1] == ' ')
		n--;
	int rc = token_verify(&gw->token, tok, n, (uint64_t)time(NULL), req->account,
	                      sizeof(req->account));
	if (rc == -EKEYEXPIRED)
		respond_unauthorized(req, "the token has expired; log in again");
	else if (rc < 0)
		respond_unauthorized(req, "invalid token");
	return rc < 0 ? -EACCES : 0;
}

/* ---- bus calls ---- */

/* Sets *k from req's header (len 0 when absent); answers 400 and returns -EINVAL. */
int route_key(http_req_t *req, idemkey_scope_t scope, const char *who, size_t who_len,
              route_key_t *k)
{
	const http_header_t *h = &req->idempotency_key;
	k->len = 0;
	if (!h->present)
		return 0;
	k->len = h->too_long ? -EINVAL
	                     : idemkey_make(scope, who, who_len, h->value, h->len, k->text);
	if (k->len < 0) {
		char msg[96];
		snprintf(msg, sizeof(msg), "Idempotency-Key must be 1 to %d bytes",
		         IDEMKEY_BYTES_MAX);
		respond_error(req, 400, "bad_request", msg);
		return -EINVAL;
	}
	return 0;
}

/* Adds the idempotency key, if there is one, to r. */
void add_key(esbank_request_t *r, const route_key_t *k)
{
	if (k->len > 0)
		esbank_req_add_str(r, "key", k->text, (size_t)k->len);
}

/*
 * Sends the bus request r for req; cb answers it. On failure answers req
 * (400 or 503) and returns false.
 */
bool route_call(gateway_t *gw, http_req_t *req, const esbank_request_t *r,
                int timeout_ms, buscall_reply_cb cb)
{
	if (req->idempotency_key.too_long) {
		respond_error(req, 400, "bad_request", "Idempotency-Key is too long");
		return false;
	}
	uint64_t id;
	int rc = buscall_send(&gw->calls, r, timeout_ms, cb, req, &id);
	if (rc == -ENOTCONN) {
		respond_error(req, 503, "unavailable", "the bank is not reachable; retry later");
		return false;
	}
	if (rc < 0) {
		respond_error(req, 503, "overloaded", "too many requests in flight; retry later");
		return false;
	}
	req->call_id = id;
	return true;
}

bool query_times_ms(const http_req_t *req)
{
	char times[8];
	return query_get(req->query, "times", times, sizeof(times)) == 0 &&
	       strcmp(times, "ms") == 0;
}

/* Replaces j's integer member name (ms since the epoch) by its RFC 3339 text. */
void json_time_rfc3339(json_t *j, const char *name)
{
	json_t *v = json_object_get(j, name);
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return;
	int64_t ms = (int64_t)json_integer_value(v);
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;
	char text[ROUTE_TIME_MAX];
	if (!gmtime_r(&secs, &tm) || strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		return;
	size_t n = strlen(text);
	snprintf(text + n, sizeof(text) - n, ".%03dZ", (int)(ms % 1000));
	json_object_set_new(j, name, json_string(text));
}
