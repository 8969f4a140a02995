/*
 * transferfile.c - `esbank transfer --file FILE`.
 *
 * The file: one transfer a line, `from,to,amount[,key]`; amount in dollars as
 * on the command line but without thousands separators (100, 12.50, $7.5;
 * no quoting, so no commas inside a field); blank lines and lines starting with `#`
 * are skipped, and so is a first line starting with `from` (a header). Every
 * line is checked before anything is sent; a bad one stops the run (exit
 * 100) naming its line number. The transfers then go in order, `batch` per
 * "transfers" request, one request at a time; a progress bar is drawn on
 * stderr when it is a terminal.
 */
#include "transferfile.h"

#include "currency.h"
#include "diag.h"
#include "ledger.h"
#include "output.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
	char from[LEDGER_ACCOUNT_DIGITS + 1];
	char to[LEDGER_ACCOUNT_DIGITS + 1];
	char key[LEDGER_KEY_BYTES_MAX + 1];
	int64_t cents;
	size_t line;
} tf_item_t;

typedef struct {
	tf_item_t *items;
	size_t n, cap;
	size_t ok, failed;
	int64_t moved; /* cents of the transfers done */
} tf_run_t;

/* Splits line at commas into at most 4 trimmed fields; returns the count. */
static int tf_split(char *line, char *f[4])
{
	int n = 0;
	for (char *p = line; n < 4; n++) {
		f[n] = p;
		char *comma = strchr(p, ',');
		if (!comma) {
			n++;
			break;
		}
		*comma = '\0';
		p = comma + 1;
	}
	for (int i = 0; i < n; i++) {
		while (*f[i] == ' ' || *f[i] == '\t')
			f[i]++;
		size_t len = strlen(f[i]);
		while (len && strchr(" \t\r\n", f[i][len - 1]))
			f[i][--len] = '\0';
	}
	return n;
}

static int tf_bad(const char *path, size_t line, const char *why)
{
	fprintf(stderr, "esbank: %s:%zu: %s; nothing was sent\n", path, line, why);
	return EXIT_USAGE;
}

/* One line into run->items; 0, or EXIT_USAGE after saying why. */
static int tf_parse_line(tf_run_t *run, const char *path, size_t lineno, char *line)
{
	char *f[4];
	int n = tf_split(line, f);
	if (n < 3 || (n == 4 && strchr(f[3], ',')))
		return tf_bad(path, lineno, "expected from,to,amount[,key]");
	if (strlen(f[0]) > LEDGER_ACCOUNT_DIGITS || strlen(f[1]) > LEDGER_ACCOUNT_DIGITS)
		return tf_bad(path, lineno, "an account number has 16 digits");
	if (n == 4 && (strlen(f[3]) < 1 || strlen(f[3]) > LEDGER_KEY_BYTES_MAX))
		return tf_bad(path, lineno, "a key is 1 to 64 bytes");
	const char *why;
	int64_t cents;
	if (currency_parse(f[2], &cents, &why) != 0)
		return tf_bad(path, lineno, why);
	if (run->n == run->cap) {
		size_t cap = run->cap ? run->cap * 2 : 1024;
		tf_item_t *p = cap <= TRANSFERFILE_LINES_MAX ? realloc(run->items, cap * sizeof(*p))
							     : NULL;
		if (!p)
			return tf_bad(path, lineno, "too many transfers in one file");
		run->items = p;
		run->cap = cap;
	}
	tf_item_t *it = &run->items[run->n++];
	snprintf(it->from, sizeof(it->from), "%s", f[0]);
	snprintf(it->to, sizeof(it->to), "%s", f[1]);
	snprintf(it->key, sizeof(it->key), "%s", n == 4 ? f[3] : "");
	it->cents = cents;
	it->line = lineno;
	return 0;
}

static int tf_read(tf_run_t *run, const char *path)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	if (!f) {
		fprintf(stderr, "esbank: cannot read %s: %s\n", path, strerror(errno));
		return EXIT_USAGE;
	}
	char line[TRANSFERFILE_LINE_BYTES_MAX];
	size_t lineno = 0;
	int rc = 0;
	while (rc == 0 && fgets(line, sizeof(line), f)) {
		lineno++;
		size_t len = strlen(line);
		if (len == sizeof(line) - 1 && line[len - 1] != '\n')
			rc = tf_bad(path, lineno, "line too long");
		else if (line[strspn(line, " \t\r\n")] == '\0' || line[0] == '#' ||
			 (lineno == 1 && strncmp(line, "from", 4) == 0))
			continue;
		else
			rc = tf_parse_line(run, path, lineno, line);
	}
	if (f != stdin)
		fclose(f);
	if (rc == 0 && run->n == 0)
		rc = tf_bad(path, lineno, "no transfers in the file");
	return rc;
}

static void tf_progress(const tf_run_t *run, size_t done)
{
	if (!isatty(STDERR_FILENO))
		return;
	int width = 40, filled = (int)(width * done / run->n);
	fprintf(stderr, "\r[%.*s%*s] %zu/%zu", filled,
		"########################################", width - filled, "", done, run->n);
	if (done == run->n)
		fputc('\n', stderr);
	fflush(stderr);
}

/* One result of the reply, for the transfer it answers. */
static void tf_result(tf_run_t *run, call_t *c, const tf_item_t *it, const msgpack_object *r)
{
	const msgpack_object *ok = msg_get(r, "ok");
	bool done = ok && ok->type == MSGPACK_OBJECT_BOOLEAN && ok->via.boolean;
	char amount[CURRENCY_TEXT_MAX], code[OUTPUT_FIELD_MAX], msg[OUTPUT_FIELD_MAX];
	if (done) {
		run->ok++;
		run->moved += it->cents;
	} else {
		run->failed++;
	}
	if (c->json) {
		printf("{\"line\":%zu,\"from\":\"%s\",\"to\":\"%s\",\"amount\":%" PRId64 ",\"result\":",
		       it->line, it->from, it->to, it->cents);
		output_json_value(stdout, r);
		printf("}\n");
	} else if (!done) {
		printf("line %zu: %s -> %s %s: %s (%s)\n", it->line, it->from, it->to,
		       currency_format(it->cents, amount), output_field(r, "message", msg),
		       output_field(r, "error", code));
	}
}

/* Sends items [from, from + n) as one request and reads its results. */
static int tf_send(tf_run_t *run, call_t *c, size_t from, size_t n, bool atomic)
{
	msgpack_packer *pk;
	msgpack_object reply;
	int rc = call_begin(c, "transfers", false, 1 + atomic, &pk);
	if (rc)
		return rc;
	if (atomic)
		msg_pack_kv_bool(pk, "atomic", true);
	msg_pack_str(pk, "transfers");
	msgpack_pack_array(pk, (uint32_t)n);
	for (size_t i = from; i < from + n; i++) {
		const tf_item_t *it = &run->items[i];
		msgpack_pack_map(pk, 3 + (it->key[0] != '\0'));
		msg_pack_kv_str(pk, "from", it->from);
		msg_pack_kv_str(pk, "to", it->to);
		msg_pack_kv_i64(pk, "amount", it->cents);
		if (it->key[0])
			msg_pack_kv_str(pk, "key", it->key);
	}
	rc = call_finish(c, RPC_REPLY_TIMEOUT_MS, &reply);
	if (rc) /* an atomic refusal, or the server could not answer */
		return rc;
	const msgpack_object *res = msg_get(&reply, "results");
	if (!res || res->type != MSGPACK_OBJECT_ARRAY || res->via.array.size != n)
		return call_fail_protocol(c, "the reply does not hold one result per transfer");
	for (size_t i = 0; i < n; i++)
		tf_result(run, c, &run->items[from + i], &res->via.array.ptr[i]);
	return 0;
}

static void tf_summary(const tf_run_t *run, const call_t *c, size_t sent)
{
	char amount[CURRENCY_TEXT_MAX];
	if (c->json) {
		printf("{\"summary\":{\"transfers\":%zu,\"sent\":%zu,\"done\":%zu,\"refused\":%zu,"
		       "\"amount\":%" PRId64 "}}\n",
		       run->n, sent, run->ok, run->failed, run->moved);
		return;
	}
	printf("%zu transfer%s: %zu done (%s moved), %zu refused", run->n, run->n == 1 ? "" : "s",
	       run->ok, currency_format(run->moved, amount), run->failed);
	if (sent < run->n)
		printf(", %zu not sent", run->n - sent);
	printf(".\n");
}

int transferfile_run(call_t *c, const char *path, size_t batch, bool atomic)
{
	tf_run_t run = { 0 };
	int rc = tf_read(&run, path);
	size_t sent = 0;
	while (rc == 0 && sent < run.n) {
		size_t n = run.n - sent < batch ? run.n - sent : batch;
		rc = tf_send(&run, c, sent, n, atomic);
		if (rc == 0)
			sent += n;
		tf_progress(&run, sent);
	}
	if (run.n)
		tf_summary(&run, c, sent);
	free(run.items);
	if (rc == 0 && run.failed)
		rc = EXIT_USAGE;
	return rc;
}
