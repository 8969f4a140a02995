/*
 * statementroute.c - GET /api/account/statement: the logged-in account's
 * statement, one protocol "statement" request (docs/protocol.md).
 *
 *   GET /api/account/statement ?month=2026-11 | ?since=T&until=T,
 *       after_seq=S, limit=L, times=ms; bearer
 *     -> 200 {"account", "opening_balance", "closing_balance",
 *             "entries": [{"seq", "ts", "type", "amount", "counterparty",
 *                          "balance"}], "more"}
 *
 * T is an RFC 3339 UTC time (2026-11-01T12:00:00Z, with optional
 * milliseconds), a date (2026-11-01: its midnight) or milliseconds since the
 * epoch; since is included and until is not; month is since its first day
 * until the next month's. Entries' ts are RFC 3339 text unless times=ms.
 * Another month or time, month with since or until, or since after until is
 * 400; after_seq and limit are passed on (limit above 10,000 counts as
 * 10,000). Read on with after_seq = the last entry's seq while "more".
 */
#include "statementroute.h"

#include "routekit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STATEMENT_YEAR_MIN 1970
#define STATEMENT_YEAR_MAX 9999

static int64_t statement_utc_ms(int y, int mo, int d, int h, int mi, int s)
{
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
		         .tm_min = mi, .tm_sec = s };
	return (int64_t)timegm(&tm) * 1000;
}

/* Parses a query time: 0, or -EINVAL. */
static int statement_parse_time(const char *v, int64_t *ms)
{
	int y, mo, d, h = 0, mi = 0, s = 0, frac = 0, n = 0;
	char *end;
	long long num = strtoll(v, &end, 10);
	if (*v >= '0' && *v <= '9' && *end == '\0' && strlen(v) > 10) {
		*ms = num; /* milliseconds (a date has dashes) */
		return 0;
	}
	if (sscanf(v, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3)
		return -EINVAL;
	const char *t = v + n;
	if (*t == 'T' || *t == 't') {
		int m = 0;
		if (sscanf(t + 1, "%2d:%2d:%2d%n", &h, &mi, &s, &m) != 3)
			return -EINVAL;
		t += 1 + m;
		if (*t == '.' && sscanf(t + 1, "%3d%n", &frac, &m) == 1 && m == 3)
			t += 1 + m;
		if (strcmp(t, "Z") != 0 && strcmp(t, "z") != 0)
			return -EINVAL;
	} else if (*t != '\0') {
		return -EINVAL;
	}
	if (y < STATEMENT_YEAR_MIN || y > STATEMENT_YEAR_MAX || mo < 1 || mo > 12 || d < 1 ||
	    d > 31 || h > 23 || mi > 59 || s > 60)
		return -EINVAL;
	*ms = statement_utc_ms(y, mo, d, h, mi, s) + frac;
	return 0;
}

/* An optional time parameter: 1 (set), 0 (absent); answers 400 otherwise. */
static int statement_query_time(http_req_t *req, const char *name, int64_t *ms)
{
	char v[ROUTE_QUERY_VALUE_MAX];
	int r = query_get(req->query, name, v, sizeof(v));
	if (r == -ENOENT)
		return 0;
	if (r == 0 && statement_parse_time(v, ms) == 0)
		return 1;
	char msg[ROUTE_MESSAGE_MAX];
	snprintf(msg, sizeof(msg), "%s must be an RFC 3339 UTC time (2026-11-01T12:00:00Z), "
	         "a date or milliseconds since the epoch", name);
	respond_error(req, 400, "bad_request", msg);
	return -EINVAL;
}

/* ?month=YYYY-MM: 1 (since, until set), 0 (absent); answers 400 otherwise. */
static int statement_query_month(http_req_t *req, int64_t *since, int64_t *until)
{
	char v[ROUTE_QUERY_VALUE_MAX], tail;
	int y, m;
	int r = query_get(req->query, "month", v, sizeof(v));
	if (r == -ENOENT)
		return 0;
	if (r < 0 || sscanf(v, "%4d-%2d%c", &y, &m, &tail) != 2 || y < STATEMENT_YEAR_MIN ||
	    y > STATEMENT_YEAR_MAX || m < 1 || m > 12) {
		respond_error(req, 400, "bad_request", "month must be a month: 2026-11");
		return -EINVAL;
	}
	*since = statement_utc_ms(y, m, 1, 0, 0, 0);
	*until = statement_utc_ms(y + (m == 12), m % 12 + 1, 1, 0, 0, 0);
	return 1;
}

/* The period: 0, or -EINVAL after answering 400. */
static int statement_period(http_req_t *req, int64_t *since, int64_t *until)
{
	int hm = statement_query_month(req, since, until);
	if (hm < 0)
		return hm;
	int64_t s = 0, u = 0;
	int hs = statement_query_time(req, "since", &s);
	int hu = hs < 0 ? -EINVAL : statement_query_time(req, "until", &u);
	if (hs < 0 || hu < 0)
		return -EINVAL;
	if (hm && (hs || hu)) {
		respond_error(req, 400, "bad_request", "month, or since and until: not both");
		return -EINVAL;
	}
	if (hs && hu && s > u) {
		respond_error(req, 400, "bad_request", "since must not be after until");
		return -EINVAL;
	}
	if (!hm) {
		*since = hs ? s : 0;
		*until = hu ? u : 0;
	}
	return 0;
}

static void reply_statement(esbank_async_t *a, int status, const esbank_reply_t *reply,
                            void *ctx)
{
	http_req_t *req = ctx;
	(void)a;
	char code[ROUTE_ERROR_CODE_MAX];
	if (reply_failed(req, status, reply, false, code))
		return;
	json_t *j = reply_fields(reply);
	json_t *es = json_object_get(j, "entries"), *e;
	size_t i;
	if (!query_times_ms(req))
		json_array_foreach(es, i, e)
			json_time_rfc3339(e, "ts");
	respond_json(req, 200, j, NULL);
}

void route_statement(gateway_t *gw, http_req_t *req)
{
	int64_t since, until;
	uint64_t after = 0, limit = 0;
	int has_limit;
	if (route_auth(gw, req) < 0 || statement_period(req, &since, &until) < 0 ||
	    query_u64(req, "after_seq", &after) < 0 ||
	    (has_limit = query_u64(req, "limit", &limit)) < 0)
		return;
	if (has_limit && limit == 0) {
		respond_error(req, 400, "bad_request", "limit must be a positive integer");
		return;
	}
	esbank_request_t r;
	esbank_req_statement(&r, req->account, since, until, after, limit);
	route_call(gw, req, &r, BUSCALL_TIMEOUT_MS, reply_statement);
}
