/*
 * output.c - human and JSON printing of replies and events (see output.h).
 *
 * JSON is written by hand so that escaping is exact: '"' and '\\' are
 * escaped, control characters (and DEL) become \n, \t, ... or \u00XX,
 * well-formed UTF-8 (no overlong forms, no surrogates, nothing above
 * U+10FFFF) is copied, and every other byte becomes \ufffd. Map keys that
 * are not strings are left out, as PROTOCOL.md says receivers ignore them.
 */
#include "output.h"
#include "runstate.h"

#include "currency.h"
#include "msg.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#define OUTPUT_LABEL_WIDTH 14
#define OUTPUT_TYPE_WIDTH 17

/* Length (1 to 4) of the well-formed UTF-8 sequence at s, or 0. */
static size_t output_utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len;
	uint32_t cp, min;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2, cp = c & 0x1f, min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		len = 3, cp = c & 0x0f, min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4, cp = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

static void output_json_char(FILE *f, unsigned char c)
{
	switch (c) {
	case '"': fputs("\\\"", f); break;
	case '\\': fputs("\\\\", f); break;
	case '\b': fputs("\\b", f); break;
	case '\f': fputs("\\f", f); break;
	case '\n': fputs("\\n", f); break;
	case '\r': fputs("\\r", f); break;
	case '\t': fputs("\\t", f); break;
	default:
		if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			putc(c, f);
	}
}

void output_json_string(FILE *f, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;

	putc('"', f);
	for (size_t i = 0; i < n;) {
		size_t len = output_utf8_len(u + i, n - i);
		if (len == 0)
			fputs("\\ufffd", f);
		else if (len == 1)
			output_json_char(f, u[i]);
		else
			fwrite(u + i, 1, len, f);
		i += len ? len : 1;
	}
	putc('"', f);
}

static void output_json_any(FILE *f, const msgpack_object *o, int depth);

static void output_json_map(FILE *f, const msgpack_object *o, const char *skip, int depth)
{
	bool first = true;

	putc('{', f);
	for (uint32_t i = 0; i < o->via.map.size; i++) {
		const msgpack_object_kv *kv = &o->via.map.ptr[i];
		if (kv->key.type != MSGPACK_OBJECT_STR || (skip && msg_str_eq(&kv->key, skip)))
			continue;
		if (!first)
			putc(',', f);
		first = false;
		output_json_string(f, kv->key.via.str.ptr, kv->key.via.str.size);
		putc(':', f);
		output_json_any(f, &kv->val, depth + 1);
	}
	putc('}', f);
}

static void output_json_array(FILE *f, const msgpack_object *o, int depth)
{
	putc('[', f);
	for (uint32_t i = 0; i < o->via.array.size; i++) {
		if (i > 0)
			putc(',', f);
		output_json_any(f, &o->via.array.ptr[i], depth + 1);
	}
	putc(']', f);
}

static void output_json_hex(FILE *f, const char *p, size_t n)
{
	putc('"', f);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%02x", (unsigned char)p[i]);
	putc('"', f);
}

static void output_json_any(FILE *f, const msgpack_object *o, int depth)
{
	if (depth > OUTPUT_JSON_DEPTH_MAX) {
		fputs("null", f);
		return;
	}
	switch (o->type) {
	case MSGPACK_OBJECT_BOOLEAN: fputs(o->via.boolean ? "true" : "false", f); break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER: fprintf(f, "%" PRIu64, o->via.u64); break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: fprintf(f, "%" PRId64, o->via.i64); break;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		if (isfinite(o->via.f64))
			fprintf(f, "%.17g", o->via.f64);
		else
			fputs("null", f);
		break;
	case MSGPACK_OBJECT_STR: output_json_string(f, o->via.str.ptr, o->via.str.size); break;
	case MSGPACK_OBJECT_BIN: output_json_hex(f, o->via.bin.ptr, o->via.bin.size); break;
	case MSGPACK_OBJECT_ARRAY: output_json_array(f, o, depth); break;
	case MSGPACK_OBJECT_MAP: output_json_map(f, o, NULL, depth); break;
	default: fputs("null", f); break; /* nil, ext */
	}
}

void output_json_value(FILE *f, const msgpack_object *o)
{
	output_json_any(f, o, 0);
}

void output_json_line(const msgpack_object *map, const char *skip)
{
	if (map->type == MSGPACK_OBJECT_MAP)
		output_json_map(stdout, map, skip, 0);
	else
		output_json_any(stdout, map, 0);
	putchar('\n');
	fflush(stdout);
}

char *output_time(int64_t ts_ms, bool with_ms, char buf[OUTPUT_TIME_MAX])
{
	int64_t ms = ts_ms % 1000;
	time_t sec = (time_t)(ts_ms / 1000);
	struct tm tm;

	if (ms < 0) {
		ms += 1000;
		sec -= 1;
	}
	if (!gmtime_r(&sec, &tm)) {
		snprintf(buf, OUTPUT_TIME_MAX, "%" PRId64 " ms", ts_ms);
		return buf;
	}
	size_t n = strftime(buf, OUTPUT_TIME_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
	if (with_ms)
		snprintf(buf + n, OUTPUT_TIME_MAX - n, ".%03dZ", (int)ms);
	else
		snprintf(buf + n, OUTPUT_TIME_MAX - n, "Z");
	return buf;
}

/* Copies s[0..n) into buf (cut to fit) with control characters as '?'. */
static char *output_clean(const char *s, size_t n, char buf[OUTPUT_FIELD_MAX])
{
	if (n >= OUTPUT_FIELD_MAX)
		n = OUTPUT_FIELD_MAX - 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		buf[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	buf[n] = '\0';
	return buf;
}

char *output_field(const msgpack_object *map, const char *key, char buf[OUTPUT_FIELD_MAX])
{
	const msgpack_object *o = msg_get(map, key);

	if (o && o->type == MSGPACK_OBJECT_NIL)
		return strcpy(buf, "-");
	if (!o || o->type != MSGPACK_OBJECT_STR)
		return strcpy(buf, "?");
	return output_clean(o->via.str.ptr, o->via.str.size, buf);
}

char *output_amount(const msgpack_object *map, const char *key, char buf[OUTPUT_FIELD_MAX])
{
	int64_t cents;

	if (msg_get_i64(map, key, &cents) < 0)
		return strcpy(buf, "?");
	char text[CURRENCY_TEXT_MAX];
	return strcpy(buf, currency_format(cents, text));
}

void output_pair(const char *label, const char *fmt, ...)
{
	va_list ap;

	printf("%-*s ", OUTPUT_LABEL_WIDTH, label);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* Formats the time under key, or "never" when nil, or "?" when malformed. */
static char *output_time_field(const msgpack_object *map, const char *key, bool with_ms,
			       char buf[OUTPUT_TIME_MAX])
{
	const msgpack_object *o = msg_get(map, key);
	int64_t ts;

	if (o && o->type == MSGPACK_OBJECT_NIL)
		return strcpy(buf, "never");
	if (msg_get_i64(map, key, &ts) < 0)
		return strcpy(buf, "?");
	return output_time(ts, with_ms, buf);
}

void output_account(const msgpack_object *reply)
{
	char buf[OUTPUT_FIELD_MAX], when[OUTPUT_TIME_MAX];
	bool verified;

	output_pair("Account", "%s", output_field(reply, "account", buf));
	bool erased = false;
	if (msg_get_bool(reply, "erased", &erased) == 0 && erased)
		output_pair("Email", "(erased)");
	else
		output_pair("Email", "%s", output_field(reply, "email", buf));
	output_pair("Balance", "%s", output_amount(reply, "balance", buf));
	if (msg_get_bool(reply, "verified", &verified) == 0)
		output_pair("Verified", "%s", verified ? "yes" : "no");
	else
		output_pair("Verified", "?");
	output_pair("Opened", "%s", output_time_field(reply, "opened_at", false, when));
	output_pair("Last activity", "%s", output_time_field(reply, "last_activity", false, when));
}

static void output_count(const msgpack_object *reply, const char *label, const char *key)
{
	uint64_t v;

	if (msg_get_u64(reply, key, &v) == 0)
		output_pair(label, "%" PRIu64, v);
	else
		output_pair(label, "?");
}

static void output_uptime(const msgpack_object *reply)
{
	uint64_t ms;

	if (msg_get_u64(reply, "uptime_ms", &ms) < 0) {
		output_pair("Uptime", "?");
		return;
	}
	uint64_t s = ms / 1000;
	unsigned h = (unsigned)(s / 3600 % 24), m = (unsigned)(s / 60 % 60);
	if (s >= 86400)
		output_pair("Uptime", "%" PRIu64 "d %02u:%02u:%02u", s / 86400, h, m,
			    (unsigned)(s % 60));
	else
		output_pair("Uptime", "%02u:%02u:%02u", h, m, (unsigned)(s % 60));
}

/* One peer's line: connected or not, its pid and hwm, esbankd's restarts. */
static void output_peer(const char *label, const char *role, const msgpack_object *p,
                        const runstate_t *sup)
{
	bool up = false;
	uint64_t pid = 0, hwm = 0;
	char extra[OUTPUT_FIELD_MAX] = "";
	msg_get_bool(p, "connected", &up);
	msg_get_u64(p, "pid", &pid);
	msg_get_u64(p, "hwm", &hwm);
	const runstate_child_t *child = sup ? runstate_find(sup, role) : NULL;
	if (child)
		snprintf(extra, sizeof(extra), "  restarts %" PRId64, child->restarts);
	output_pair(label, "%-12s %-13s pid %-8" PRIu64 " hwm %-10" PRIu64 "%s", role,
	            up ? "connected" : "not connected", pid, hwm, extra);
}

static void output_peers(const msgpack_object *reply, const runstate_t *sup)
{
	const msgpack_object *peers = msg_get(reply, "peers");
	const char *label = "Peers";

	if (!peers || peers->type != MSGPACK_OBJECT_MAP) {
		output_pair(label, "?");
		return;
	}
	for (uint32_t i = 0; i < peers->via.map.size; i++) {
		const msgpack_object_kv *kv = &peers->via.map.ptr[i];
		char role[OUTPUT_FIELD_MAX];
		if (kv->key.type != MSGPACK_OBJECT_STR)
			continue;
		output_clean(kv->key.via.str.ptr, kv->key.via.str.size, role);
		output_peer(label, role, &kv->val, sup);
		label = "";
	}
	if (*label)
		output_pair(label, "none");
}

void output_status(const msgpack_object *reply, const runstate_t *sup)
{
	char buf[OUTPUT_FIELD_MAX];

	output_pair("State", "%s", output_field(reply, "state", buf));
	output_count(reply, "Last seq", "last_seq");
	output_count(reply, "Durable seq", "durable_seq");
	output_count(reply, "Snapshot seq", "snapshot_seq");
	output_pair("Head hash", "%s", output_field(reply, "head_hash", buf));
	output_uptime(reply);
	output_peers(reply, sup);
}

/* Prints the fields of an event of a type this client does not know. */
static void output_event_other(const msgpack_object *ev)
{
	static const char *const known[] = { "seq", "ts", "type", "key" };
	const char *sep = "";

	for (uint32_t i = 0; i < ev->via.map.size; i++) {
		const msgpack_object_kv *kv = &ev->via.map.ptr[i];
		bool skip = kv->key.type != MSGPACK_OBJECT_STR;
		for (size_t k = 0; !skip && k < sizeof(known) / sizeof(known[0]); k++)
			skip = msg_str_eq(&kv->key, known[k]);
		if (skip)
			continue;
		char name[OUTPUT_FIELD_MAX];
		output_clean(kv->key.via.str.ptr, kv->key.via.str.size, name);
		printf("%s%s=", sep, name);
		output_json_value(stdout, &kv->val);
		sep = "  ";
	}
}

static void output_event_details(const msgpack_object *ev, const char *type)
{
	char a[OUTPUT_FIELD_MAX], b[OUTPUT_FIELD_MAX], c[OUTPUT_FIELD_MAX];

	/* a sealed email (email_enc) is not shown: `esbank export` opens it */
	bool plain = msg_get(ev, "email") != NULL;
	if (strcmp(type, "account_opened") == 0)
		printf("%s  %s  %s", output_field(ev, "account", a),
		       plain ? output_field(ev, "email", b) : "(email sealed)",
		       output_amount(ev, "balance", c));
	else if (strcmp(type, "account_verified") == 0 || strcmp(type, "code_reissued") == 0 ||
	         strcmp(type, "account_erased") == 0)
		printf("%s", output_field(ev, "account", a));
	else if (strcmp(type, "money_transferred") == 0)
		printf("%s -> %s  %s", output_field(ev, "from", a), output_field(ev, "to", b),
		       output_amount(ev, "amount", c));
	else if (strcmp(type, "money_withdrawn") == 0)
		printf("%s  %s", output_field(ev, "account", a), output_amount(ev, "amount", c));
	else
		output_event_other(ev);
}

void output_event(const msgpack_object *ev)
{
	char type[OUTPUT_FIELD_MAX], when[OUTPUT_TIME_MAX], key[OUTPUT_FIELD_MAX];
	uint64_t seq = 0;

	if (ev->type != MSGPACK_OBJECT_MAP) {
		printf("(not an event: ");
		output_json_value(stdout, ev);
		printf(")\n");
		return;
	}
	msg_get_u64(ev, "seq", &seq);
	output_field(ev, "type", type);
	printf("%8" PRIu64 "  %s  %-*s  ", seq, output_time_field(ev, "ts", true, when),
	       OUTPUT_TYPE_WIDTH, type);
	output_event_details(ev, type);
	if (msg_get(ev, "key"))
		printf("  key=%s", output_field(ev, "key", key));
	putchar('\n');
	fflush(stdout);
}
