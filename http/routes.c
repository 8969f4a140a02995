/*
 * routes.c - the REST API: each route checks its input, makes one protocol
 * request on the bus link, and turns the reply into an HTTP response.
 * http/openapi.json describes it (OpenAPI 3.1, served at /api/openapi.json);
 * success bodies are the protocol reply's fields (docs/protocol.md) but
 * "id" and "ok". The account field is "account" everywhere (the older
 * names "account_number" and "to_account_number" are still read).
 *
 *   POST /api/account {"email","password"}          open_account
 *        -> 201 {"seq","account"}, Location: /api/account
 *   GET  /api/verify ?account=&code=  (also account_number=, the mailed link)
 *        Accept: application/json (alone) -> verify_account -> 200 {"seq"};
 *        otherwise (a browser, a mail scanner) 200 a page whose button
 *        POSTs the form below, and the GET changes nothing
 *   POST /api/verify account=&code= (form)  verify_account -> a page, in words
 *        or {"account","code"} (JSON)         verify_account -> 200 {"seq"}
 *   POST /api/login {"account","password"}   authenticate
 *        -> 200 {"token": "..."}; 401 auth_failed; 429 rate_limited
 *   POST /api/money_transfer {"to","amount"}, bearer
 *        -> transfer from the token's account; 200 {"seq","balance"}
 *   POST /api/withdraw {"amount"}, bearer    withdraw; 200 {"seq","balance"}
 *   POST /api/money_transfers {"transfers":[{"to","amount","key"?}],"atomic"?},
 *        bearer -> transfers from the token's account; 200 {"results"}
 *        (bulkroute.c)
 *   GET  /api/report/sum_transactions ?year=&month=&day=, bearer -> 200 {"sum"}
 *   GET  /api/report/inactive_users ?days=, bearer               -> 200 {"total"}
 *   GET  /api/account ?times=ms, bearer                          get_account
 *        -> 200 {account, email, balance, verified, opened_at, last_activity};
 *        times are RFC 3339 UTC with milliseconds, or integers (ms) with times=ms
 *   DELETE /api/account, bearer               erase_account of the token's account
 *        (never forced: the balance must be 0) -> 200 {"seq"}; 409
 *        balance_not_zero, already_erased (docs/privacy.md)
 *   GET  /api/account/statement ?month=|since=&until=, after_seq=, limit=,
 *        times=ms, bearer -> statement of the token's account (statementroute.c)
 *   GET  /api/openapi.json                   the OpenAPI document
 *   GET  /metrics, on the --metrics listener only   metrics (else status);
 *        Prometheus text: the gateway's families, then the group's
 *
 * Request bodies are JSON objects of at most HTTP_BODY_BYTES_MAX bytes;
 * amounts are JSON integers (cents).
 *
 * Dry runs (docs/protocol.md "Dry runs"): ?dry_run=1 (or true) or the header
 * Prefer: dry-run on a command (POST /api/account, /api/verify as JSON,
 * /api/money_transfer, /api/withdraw, DELETE /api/account) sends it with "dry_run": true: the
 * answer is the real call's status and body with "dry_run": true (errors
 * too), and nothing changes; with Prefer, it carries Preference-Applied:
 * dry-run; a dry POST /api/account has no Location. dry_run=0 or false is
 * a real call; another dry_run value, or a Prefer header too long to read,
 * is 400 bad_request; so is a dry run of the verification form (a dry run
 * answers JSON). Queries (every GET but /api/verify as JSON) and the page
 * GET /api/verify shows ignore dry_run and Prefer: they change nothing.
 *
 * Idempotency-Key (1 to IDEMKEY_BYTES_MAX = 64 bytes, else 400) on a command
 * makes a retry safe, for the user who sends it: the bank sees the key
 * scoped to the logged-in account (transfer, withdraw), the email (open),
 * or the account_number (verify) (idemkey.h). Two users with the same key
 * never meet: each replay of a user's request gets that user's original
 * result; the same key with another body from the same user is 400
 * key_conflict.
 *
 * Login attempts (login.h): failures count per (account, address), at most
 * LOGIN_FAILS_PER_PAIR_MAX = 5, and per account from all addresses, at most
 * LOGIN_FAILS_PER_ACCOUNT_MAX = 10, in windows of 15 minutes; beyond, 429
 * rate_limited with Retry-After, even for the right password. An attempt
 * counts from the moment it starts, so parallel attempts cannot overrun the
 * limit. An address is never locked out as a whole: after
 * LOGIN_FAILS_PER_ADDR_MAX = 100 failures across accounts it is paced to
 * one attempt per second. A successful login clears its account's and its
 * (account, address) failures.
 *
 * Errors are {"error": code, "message": text}:
 *   400 bad_request (malformed JSON, missing field, wrong type)
 *   401 unauthorized (missing, forged or expired token), auth_failed (login)
 *   404 no_route, not_found (an unknown account); 405 method_not_allowed (Allow)
 *   409 already_exists, already_verified, key_conflict, balance_not_zero,
 *       already_erased
 *   415 unsupported_media_type (a body whose Content-Type is not JSON)
 *   422 insufficient_funds, same_account, invalid_amount, not_verified, wrong_code
 *   429 rate_limited (with Retry-After): failed logins, see login.h
 *   500 internal; 503 unavailable / overloaded (no bus, or the bus says so),
 *       not_primary (a standby; "primary": the primary group or null, and
 *       Retry-After); 504 timeout (no reply within BUSCALL_TIMEOUT_MS)
 */
#include "routes.h"
#include "routekit.h"
#include "bulkroute.h"
#include "statementroute.h"

#include "idemkey.h"
#include "diag.h"
#include "msg.h"
#include "openapi_json.h"
#include "page.h"

#include <errno.h>
#include <http_parser.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

typedef void (*route_fn)(gateway_t *gw, http_req_t *req);

/* Which listener serves a route: the public API, or the --metrics one. */
typedef enum { ROUTE_PUBLIC, ROUTE_METRICS } route_where_t;

typedef struct {
	const char *path;
	int method;
	route_fn fn;
	route_where_t where;
} route_t;

/* The gateway a server belongs to (gateway.c sets server.data). */
static gateway_t *routes_gateway(http_server_t *s)
{
	return s->data;
}

/* Ends req's login attempt, if it holds one (login.h). */
static void login_done(gateway_t *gw, http_req_t *req, login_outcome_t outcome)
{
	if (!req->login_held)
		return;
	req->login_held = false;
	login_end(&gw->logins, req->account, req->peer, uv_now(gw->loop), outcome);
}

void routes_cancel(http_server_t *s, http_req_t *req)
{
	gateway_t *gw = routes_gateway(s);
	if (req->call_id)
		buscall_cancel(&gw->calls, req->call_id);
	req->call_id = 0;
	login_done(gw, req, LOGIN_FAILED); /* the client left; the bank still evaluates it */
}

/* ---- routes ---- */

static void reply_open_account(esbank_async_t *a, int status, const esbank_reply_t *reply,
                               void *ctx)
{
	http_req_t *req = ctx;
	(void)a;
	char code[ROUTE_ERROR_CODE_MAX];
	if (reply_failed(req, status, reply, false, code))
		return;
	char acct[HTTP_ACCOUNT_MAX];
	if (!reply_str(reply, "account", acct, sizeof(acct))) {
		respond_error(req, 500, "internal", "the reply has no account number");
		return;
	}
	/* The new account is the one GET /api/account shows once logged in;
	 * a dry run's names no account, and gets no Location. */
	const char *extra = dry_mode(req) > 0 ? dry_header(req) : "Location: /api/account\r\n";
	respond_json(req, 201, reply_fields(reply), extra);
}

static void route_open_account(gateway_t *gw, http_req_t *req)
{
	json_t *body = body_object(req);
	const char *email, *pw;
	size_t en, pn;
	if (!body)
		return;
	route_key_t key;
	int dry;
	if (body_str(req, body, "email", &email, &en) == 0 &&
	    body_str(req, body, "password", &pw, &pn) == 0 &&
	    route_key(req, IDEMKEY_EMAIL, email, en, &key) == 0 && (dry = route_dry(req)) >= 0) {
		esbank_request_t r;
		esbank_req_start(&r, "open_account");
		esbank_req_add_str(&r, "email", email, en);
		esbank_req_add_str(&r, "password", pw, pn);
		add_key(&r, &key);
		add_dry(&r, dry);
		route_call(gw, req, &r, BUSCALL_TIMEOUT_MS, reply_open_account);
	}
	json_decref(body);
}

/* A form's answer is a page (page.h); a JSON client's is the reply's fields. */
static void reply_verify(esbank_async_t *a, int status, const esbank_reply_t *reply,
                         void *ctx)
{
	http_req_t *req = ctx;
	(void)a;
	char code[ROUTE_ERROR_CODE_MAX];
	bool html = req->method == HTTP_POST ? body_type_is(req, ROUTE_FORM_TYPE)
	                                     : req_wants_html(req);
	if (reply_failed(req, status, reply, html, code))
		return;
	if (html)
		respond_page(req, 200, NULL);
	else
		respond_json(req, 200, reply_fields(reply), dry_header(req));
}

/* Sends verify_account for acct and code; reply_verify answers. */
static void verify_call(gateway_t *gw, http_req_t *req, const char *acct, const char *code)
{
	route_key_t key;
	int dry;
	if (route_key(req, IDEMKEY_VERIFY, acct, strlen(acct), &key) < 0 ||
	    (dry = route_dry(req)) < 0)
		return;
	esbank_request_t r;
	esbank_req_start(&r, "verify_account");
	esbank_req_add_str(&r, "account", acct, 0);
	esbank_req_add_str(&r, "code", code, 0);
	add_key(&r, &key);
	add_dry(&r, dry);
	route_call(gw, req, &r, BUSCALL_TIMEOUT_MS, reply_verify);
}

/* The account in q: "account", or the mailed links' older "account_number". */
static int query_account(const char *q, char *out, size_t size)
{
	int rc = query_get(q, "account", out, size);
	return rc == -ENOENT ? query_get(q, "account_number", out, size) : rc;
}

/*
 * GET: only a client that asks for JSON alone (Accept: application/json)
 * verifies; everyone else (a browser, a mail scanner that opens the link,
 * no Accept at all) gets the page whose button POSTs the verification, and
 * nothing changes.
 */
static void route_verify(gateway_t *gw, http_req_t *req)
{
	char acct[ROUTE_QUERY_VALUE_MAX], code[ROUTE_QUERY_VALUE_MAX];
	bool html = !req_wants_json_only(req);
	if (query_account(req->query, acct, sizeof(acct)) < 0 ||
	    query_get(req->query, "code", code, sizeof(code)) < 0) {
		if (html)
			respond_page(req, 400, "bad_request");
		else
			respond_error(req, 400, "bad_request", "account and code are required");
		return;
	}
	if (!html) {
		verify_call(gw, req, acct, code);
		return;
	}
	char page[PAGE_BYTES_MAX];
	int n = page_verify_form(page, acct, code);
	if (n < 0)
		respond_page(req, 400, "bad_request");
	else
		http_respond(req, 200, ROUTE_HTML_CTYPE, page, (size_t)n,
		             "Cache-Control: no-store\r\nReferrer-Policy: no-referrer\r\n");
}

/*
 * POST: the page's form (urlencoded, answered with a page), or JSON. A
 * dry run answers JSON only: the form cannot ask for one.
 */
static void route_verify_post(gateway_t *gw, http_req_t *req)
{
	char acct[ROUTE_QUERY_VALUE_MAX], code[ROUTE_QUERY_VALUE_MAX];
	if (body_type_is(req, ROUTE_FORM_TYPE) && dry_mode(req) != 0) {
		respond_error(req, 400, "bad_request", "a dry run takes a JSON body, not the form");
		return;
	}
	if (body_type_is(req, ROUTE_FORM_TYPE)) {
		const char *b = req->body_len ? req->body : "";
		if (query_get(b, "account", acct, sizeof(acct)) < 0 ||
		    query_get(b, "code", code, sizeof(code)) < 0)
			respond_page(req, 400, "bad_request");
		else
			verify_call(gw, req, acct, code);
		return;
	}
	json_t *body = body_object(req);
	const char *a, *c;
	size_t an, cn;
	if (!body)
		return;
	if (body_str(req, body, "account", &a, &an) == 0 &&
	    body_str(req, body, "code", &c, &cn) == 0) {
		if (an >= sizeof(acct) || cn >= sizeof(code) || memchr(a, 0, an) || memchr(c, 0, cn)) {
			respond_error(req, 400, "bad_request", "account or code too long");
		} else {
			memcpy(acct, a, an + 1);
			memcpy(code, c, cn + 1);
			verify_call(gw, req, acct, code);
		}
	}
	json_decref(body);
}

static void reply_login(esbank_async_t *a, int status, const esbank_reply_t *reply,
                        void *ctx)
{
	http_req_t *req = ctx;
	(void)a;
	gateway_t *gw = routes_gateway(req->server);
	char code[ROUTE_ERROR_CODE_MAX] = "";
	if (status == 0 && reply_ok(reply))
		login_done(gw, req, LOGIN_OK);
	else if (status == 0 && reply_str(reply, "error", code, sizeof(code)) &&
	         strcmp(code, "auth_failed") == 0)
		login_done(gw, req, LOGIN_FAILED);
	else
		login_done(gw, req, LOGIN_UNKNOWN);
	if (reply_failed(req, status, reply, false, code))
		return;
	char tok[TOKEN_TEXT_MAX];
	if (token_make(&gw->token, req->account, (uint64_t)time(NULL), tok, sizeof(tok)) < 0) {
		respond_error(req, 500, "internal", "cannot make a token for this account");
		return;
	}
	json_t *j = json_object();
	json_object_set_new(j, "token", json_string(tok));
	respond_json(req, 200, j, NULL);
}

/*
 * Starts req's login attempt (login.h): returns false, the attempt held, or
 * answers 429 and returns true when it must wait.
 */
static bool login_limited(gateway_t *gw, http_req_t *req)
{
	uint64_t wait_ms = login_begin(&gw->logins, req->account, req->peer, uv_now(gw->loop));
	if (wait_ms == 0) {
		req->login_held = true;
		return false;
	}
	char extra[64];
	snprintf(extra, sizeof(extra), "Retry-After: %llu\r\n",
	         (unsigned long long)((wait_ms + 999) / 1000));
	static const char code[] = "rate_limited";
	static const char msg[] = "too many failed logins; try again later";
	respond_error_n(req, 429, code, sizeof(code) - 1, msg, sizeof(msg) - 1, extra);
	return true;
}

static void route_login(gateway_t *gw, http_req_t *req)
{
	json_t *body = body_object(req);
	const char *acct, *pw;
	size_t an, pn;
	if (!body)
		return;
	if (body_str_or(req, body, "account", "account_number", &acct, &an) < 0 ||
	    body_str(req, body, "password", &pw, &pn) < 0)
		goto out;
	if (an >= sizeof(req->account) || memchr(acct, '\0', an)) {
		login_fail_unsent(&gw->logins, req->peer, uv_now(gw->loop));
		respond_error(req, 401, "auth_failed", "wrong account number or password");
		goto out;
	}
	memcpy(req->account, acct, an);
	req->account[an] = '\0';
	if (login_limited(gw, req))
		goto out;
	esbank_request_t r;
	esbank_req_start(&r, "authenticate");
	esbank_req_add_str(&r, "account", acct, an);
	esbank_req_add_str(&r, "password", pw, pn);
	if (!route_call(gw, req, &r, BUSCALL_TIMEOUT_MS, reply_login)) {
		login_done(gw, req, LOGIN_UNKNOWN); /* answered 503 or 400 */
	}
out:
	json_decref(body);
}

/* Answers the reply's fields (seq, balance, ...) as JSON. */
static void reply_json(esbank_async_t *a, int status, const esbank_reply_t *reply,
                       void *ctx)
{
	http_req_t *req = ctx;
	(void)a;
	char code[ROUTE_ERROR_CODE_MAX];
	if (!reply_failed(req, status, reply, false, code))
		respond_json(req, 200, reply_fields(reply), dry_header(req));
}

static void route_transfer(gateway_t *gw, http_req_t *req)
{
	if (route_auth(gw, req) < 0)
		return;
	json_t *body = body_object(req);
	const char *to;
	size_t tn;
	int64_t amount;
	if (!body)
		return;
	route_key_t key;
	int dry;
	if (body_str_or(req, body, "to", "to_account_number", &to, &tn) == 0 &&
	    body_int(req, body, "amount", &amount) == 0 &&
	    route_key(req, IDEMKEY_ACCOUNT, req->account, strlen(req->account), &key) == 0 &&
	    (dry = route_dry(req)) >= 0) {
		esbank_request_t r;
		esbank_req_start(&r, "transfer");
		esbank_req_add_str(&r, "from", req->account, 0);
		esbank_req_add_str(&r, "to", to, tn);
		esbank_req_add_int(&r, "amount", amount);
		add_key(&r, &key);
		add_dry(&r, dry);
		route_call(gw, req, &r, BUSCALL_TIMEOUT_MS, reply_json);
	}
	json_decref(body);
}

static void route_withdraw(gateway_t *gw, http_req_t *req)
{
	if (route_auth(gw, req) < 0)
		return;
	json_t *body = body_object(req);
	int64_t amount;
	if (!body)
		return;
	route_key_t key;
	int dry;
	if (body_int(req, body, "amount", &amount) == 0 &&
	    route_key(req, IDEMKEY_ACCOUNT, req->account, strlen(req->account), &key) == 0 &&
	    (dry = route_dry(req)) >= 0) {
		esbank_request_t r;
		esbank_req_start(&r, "withdraw");
		esbank_req_add_str(&r, "account", req->account, 0);
		esbank_req_add_int(&r, "amount", amount);
		add_key(&r, &key);
		add_dry(&r, dry);
		route_call(gw, req, &r, BUSCALL_TIMEOUT_MS, reply_json);
	}
	json_decref(body);
}

/* erase_account of the logged-in account; never forced (an operator's choice). */
static void route_erase(gateway_t *gw, http_req_t *req)
{
	if (route_auth(gw, req) < 0)
		return;
	route_key_t key;
	int dry;
	if (route_key(req, IDEMKEY_ACCOUNT, req->account, strlen(req->account), &key) < 0 ||
	    (dry = route_dry(req)) < 0)
		return;
	esbank_request_t r;
	esbank_req_start(&r, "erase_account");
	esbank_req_add_str(&r, "account", req->account, 0);
	add_key(&r, &key);
	add_dry(&r, dry);
	route_call(gw, req, &r, BUSCALL_TIMEOUT_MS, reply_json);
}

/* Answers {name: value} with the reply's field name. */
static void reply_one_field(http_req_t *req, int status, const esbank_reply_t *reply,
                            const char *name)
{
	char code[ROUTE_ERROR_CODE_MAX];
	if (reply_failed(req, status, reply, false, code))
		return;
	json_t *all = reply_to_json(reply);
	json_t *v = json_object_get(all, name);
	if (!v) {
		json_decref(all);
		respond_error(req, 500, "internal", "the reply lacks its result");
		return;
	}
	json_t *j = json_object();
	json_object_set(j, name, v);
	json_decref(all);
	respond_json(req, 200, j, NULL);
}

static void reply_sum(esbank_async_t *a, int status, const esbank_reply_t *reply,
                      void *ctx)
{
	(void)a;
	reply_one_field(ctx, status, reply, "sum");
}

static void reply_total(esbank_async_t *a, int status, const esbank_reply_t *reply,
                        void *ctx)
{
	(void)a;
	reply_one_field(ctx, status, reply, "total");
}

static void route_sum(gateway_t *gw, http_req_t *req)
{
	static const char *const names[] = { "year", "month", "day" };
	uint64_t vals[3];
	int have[3];
	if (route_auth(gw, req) < 0)
		return;
	for (int i = 0; i < 3; i++) {
		have[i] = query_u64(req, names[i], &vals[i]);
		if (have[i] < 0)
			return;
	}
	esbank_request_t r;
	esbank_req_start(&r, "sum_transactions");
	for (int i = 0; i < 3; i++)
		if (have[i])
			esbank_req_add_int(&r, names[i], (int64_t)vals[i]); /* <= 12 digits */
	route_call(gw, req, &r, BUSCALL_TIMEOUT_MS, reply_sum);
}

static void route_inactive(gateway_t *gw, http_req_t *req)
{
	uint64_t days;
	if (route_auth(gw, req) < 0)
		return;
	int have = query_u64(req, "days", &days);
	if (have < 0)
		return;
	esbank_request_t r;
	esbank_req_start(&r, "inactive_users");
	if (have)
		esbank_req_add_int(&r, "days", (int64_t)days); /* <= 12 digits */
	route_call(gw, req, &r, BUSCALL_TIMEOUT_MS, reply_total);
}

/* Times are RFC 3339 text, or milliseconds when the query says times=ms. */
static void reply_account(esbank_async_t *a, int status, const esbank_reply_t *reply,
                          void *ctx)
{
	http_req_t *req = ctx;
	(void)a;
	char code[ROUTE_ERROR_CODE_MAX];
	if (reply_failed(req, status, reply, false, code))
		return;
	json_t *j = reply_fields(reply);
	if (!query_times_ms(req)) {
		json_time_rfc3339(j, "opened_at");
		json_time_rfc3339(j, "last_activity");
	}
	respond_json(req, 200, j, NULL);
}

static void route_get_account(gateway_t *gw, http_req_t *req)
{
	if (route_auth(gw, req) < 0)
		return;
	esbank_request_t r;
	esbank_req_get_account(&r, req->account);
	route_call(gw, req, &r, BUSCALL_TIMEOUT_MS, reply_account);
}

/*
 * Answers a scrape: the gateway's figures, the bus's status gauges from
 * status (or NULL), and group[0..group_len), the group's text (or NULL).
 */
static void metrics_respond(gateway_t *gw, http_req_t *req, const esbank_reply_t *status,
                            const char *group, size_t group_len)
{
	metrics_gauges_t g = {
		.bus_connected = buscall_up(&gw->calls),
		.connections = gw->server.nconns,
		.bus_pending = buscall_inflight(&gw->calls),
		.group = group,
		.group_len = group_len,
	};
	int64_t last = 0, durable = 0;
	if (status && reply_ok(status)) {
		g.have_status = true;
		reply_str(status, "state", g.state, sizeof(g.state));
		esbank_reply_get_int(status, "last_seq", &last);
		esbank_reply_get_int(status, "durable_seq", &durable);
		g.last_seq = last > 0 ? (uint64_t)last : 0;
		g.durable_seq = durable > 0 ? (uint64_t)durable : 0;
	}
	char *text;
	size_t n;
	if (metrics_render(&gw->metrics, &g, &text, &n) < 0) {
		respond_error(req, 500, "internal", "out of memory");
		return;
	}
	http_respond(req, 200, ROUTE_METRICS_CTYPE, text, n, NULL);
	free(text);
}

static void reply_metrics_status(esbank_async_t *a, int status, const esbank_reply_t *reply,
                                 void *ctx)
{
	http_req_t *req = ctx;
	(void)a;
	metrics_respond(routes_gateway(req->server), req, status == 0 ? reply : NULL, NULL, 0);
}

/*
 * The "text" of a metrics reply in a new malloc'd string (*text, its
 * length *n). Returns 0, -ENOENT (no text: an error reply), -ENOSPC (longer
 * than ROUTE_GROUP_TEXT_BYTES_MAX), -ENOMEM, -EINVAL (not a string).
 */
static int reply_group_text(const esbank_reply_t *reply, char **text, size_t *n)
{
	for (size_t size = ROUTE_GROUP_TEXT_BYTES_MIN; size <= ROUTE_GROUP_TEXT_BYTES_MAX;
	     size *= 2) {
		char *buf = malloc(size);
		if (!buf)
			return -ENOMEM;
		int rc = esbank_reply_get_str(reply, "text", buf, size);
		if (rc == 0) {
			*text = buf;
			*n = strlen(buf);
			return 0;
		}
		free(buf);
		if (rc != -ENOSPC)
			return rc;
	}
	return -ENOSPC;
}

/*
 * The bus's metrics reply: its text follows the gateway's. A bus that
 * answered without text (an error; a bus that predates the op) is asked
 * for its status instead; a bus that did not answer is reported down.
 */
static void reply_metrics_group(esbank_async_t *a, int status, const esbank_reply_t *reply,
                                void *ctx)
{
	http_req_t *req = ctx;
	gateway_t *gw = routes_gateway(req->server);
	(void)a;
	char *text;
	size_t n;
	int rc = status < 0 ? status : reply_group_text(reply, &text, &n);
	if (rc == 0) {
		metrics_respond(gw, req, NULL, text, n);
		free(text);
		return;
	}
	if (rc == -ENOSPC)
		diag_warn("http: the group's metrics exceed %d bytes; left out",
		          ROUTE_GROUP_TEXT_BYTES_MAX);
	if (status < 0) {
		metrics_respond(gw, req, NULL, NULL, 0);
		return;
	}
	esbank_request_t r;
	uint64_t id;
	esbank_req_status(&r);
	if (buscall_send(&gw->calls, &r, BUSCALL_STATUS_TIMEOUT_MS, reply_metrics_status, req,
	                 &id) < 0) {
		metrics_respond(gw, req, NULL, NULL, 0);
		return;
	}
	req->call_id = id;
}

/* A scrape asks the bus for the group's figures (the op metrics, docs/protocol.md). */
static void route_metrics(gateway_t *gw, http_req_t *req)
{
	esbank_request_t r;
	uint64_t id;
	esbank_req_start(&r, "metrics");
	int rc = buscall_send(&gw->calls, &r, BUSCALL_STATUS_TIMEOUT_MS, reply_metrics_group, req,
	                      &id);
	if (rc < 0) {
		metrics_respond(gw, req, NULL, NULL, 0);
		return;
	}
	req->call_id = id;
}

/* http/openapi.json, built in (openapi_json.h). */
static void route_openapi(gateway_t *gw, http_req_t *req)
{
	(void)gw;
	http_respond(req, 200, "application/json", OPENAPI_JSON, sizeof(OPENAPI_JSON) - 1, NULL);
}

/* ---- the table ---- */

static const route_t routes[] = {
	{ "/api/account", HTTP_POST, route_open_account, ROUTE_PUBLIC },
	{ "/api/account", HTTP_GET, route_get_account, ROUTE_PUBLIC },
	{ "/api/account", HTTP_DELETE, route_erase, ROUTE_PUBLIC },
	{ "/api/verify", HTTP_GET, route_verify, ROUTE_PUBLIC },
	{ "/api/verify", HTTP_POST, route_verify_post, ROUTE_PUBLIC },
	{ "/api/login", HTTP_POST, route_login, ROUTE_PUBLIC },
	{ "/api/money_transfer", HTTP_POST, route_transfer, ROUTE_PUBLIC },
	{ "/api/withdraw", HTTP_POST, route_withdraw, ROUTE_PUBLIC },
	{ "/api/money_transfers", HTTP_POST, route_transfers, ROUTE_PUBLIC },
	{ "/api/account/statement", HTTP_GET, route_statement, ROUTE_PUBLIC },
	{ "/api/report/sum_transactions", HTTP_GET, route_sum, ROUTE_PUBLIC },
	{ "/api/report/inactive_users", HTTP_GET, route_inactive, ROUTE_PUBLIC },
	{ "/api/openapi.json", HTTP_GET, route_openapi, ROUTE_PUBLIC },
	{ "/metrics", HTTP_GET, route_metrics, ROUTE_METRICS },
};

#define ROUTES_COUNT (sizeof(routes) / sizeof(routes[0]))

/* "invalid", "unmatched", then each path once, in table order. */
static const char *route_labels[2 + ROUTES_COUNT] = { "invalid", "unmatched" };
static size_t route_nlabels;

const char *const *routes_labels(size_t *n)
{
	if (route_nlabels == 0) {
		route_nlabels = 2;
		for (size_t i = 0; i < ROUTES_COUNT; i++) {
			size_t j = 2;
			while (j < route_nlabels && strcmp(route_labels[j], routes[i].path) != 0)
				j++;
			if (j == route_nlabels)
				route_labels[route_nlabels++] = routes[i].path;
		}
	}
	*n = route_nlabels;
	return route_labels;
}

static int route_label_index(const char *path)
{
	for (size_t j = 2; j < route_nlabels; j++)
		if (strcmp(route_labels[j], path) == 0)
			return (int)j;
	return 1;
}

void routes_dispatch(http_server_t *s, http_req_t *req)
{
	gateway_t *gw = routes_gateway(s);
	route_where_t where = s == &gw->metrics_server ? ROUTE_METRICS : ROUTE_PUBLIC;
	char allow[128] = "Allow: ";
	bool path_known = false;
	for (size_t i = 0; i < ROUTES_COUNT; i++) {
		if (routes[i].where != where || strcmp(routes[i].path, req->path) != 0)
			continue;
		path_known = true;
		req->route = route_label_index(req->path);
		if (routes[i].method == req->method) {
			routes[i].fn(gw, req);
			return;
		}
		size_t n = strlen(allow);
		snprintf(allow + n, sizeof(allow) - n, "%s%s", n > 7 ? ", " : "",
		         http_method_str((enum http_method)routes[i].method));
	}
	if (!path_known) {
		req->route = 1;
		respond_error(req, 404, "no_route", "no such route");
		return;
	}
	strncat(allow, "\r\n", sizeof(allow) - strlen(allow) - 1);
	static const char code[] = "method_not_allowed";
	static const char msg[] = "this route does not take that method";
	respond_error_n(req, 405, code, sizeof(code) - 1, msg, sizeof(msg) - 1, allow);
}
