/*
 * bank_tour.c - an example of libesbank (docs/libesbank.md): opens two
 * accounts, verifies them with the codes from the mailer's Maildir, moves
 * money with the blocking API, reads the balances back with pipelined async
 * calls on a libuv loop, and reads the log with an async subscription.
 *
 * Build:  cc bank_tour.c $(pkg-config --cflags --libs esbank) -o bank_tour
 * Run:    ./bank_tour RUN OUTBOX      (e.g. var/run var/data/mail/outbox)
 * Exit:   0 done, 100 wrong usage or a refused request, 111 cannot connect.
 */
#ifndef _GNU_SOURCE
#define _POSIX_C_SOURCE 200809L /* uv.h and nanosleep under -std=c11 */
#endif
#include <esbank.h>

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TOUR_CODE_BYTES_MAX 256
#define TOUR_MAIL_BYTES_MAX (256 * 1024)
#define TOUR_MAIL_WAIT_MS 15000
#define TOUR_PIPELINE 8

static int fail(const char *what, int rc, const esbank_reply_t *r)
{
	if (rc < 0)
		fprintf(stderr, "bank_tour: %s: %s\n", what, strerror(-rc));
	else
		fprintf(stderr, "bank_tour: %s: %s (%s)\n", what, r->message, r->error);
	return 100;
}

/* Undoes quoted-printable's soft breaks and =3D in place. */
static void unquote(char *s)
{
	char *w = s;
	for (char *p = s; *p;) {
		if (p[0] == '=' && p[1] == '\n') {
			p += 2;
		} else if (p[0] == '=' && p[1] == '\r' && p[2] == '\n') {
			p += 3;
		} else if (strncmp(p, "=3D", 3) == 0) {
			*w++ = '=';
			p += 3;
		} else {
			*w++ = *p++;
		}
	}
	*w = '\0';
}

/* Finds "account_number=ACCOUNT&code=CODE" in one mail file. */
static int code_in_file(const char *path, const char *account, char *code)
{
	static char text[TOUR_MAIL_BYTES_MAX];
	char needle[64];
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	unquote(text);
	snprintf(needle, sizeof(needle), "account_number=%s&", account);
	char *p = strstr(text, needle);
	if (!p)
		return 0;
	p += strlen(needle);
	if (strncmp(p, "amp;", 4) == 0)
		p += 4;
	if (strncmp(p, "code=", 5) != 0)
		return 0;
	p += 5;
	size_t len = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
	if (len == 0 || len >= TOUR_CODE_BYTES_MAX)
		return 0;
	memcpy(code, p, len);
	code[len] = '\0';
	return 1;
}

/* Waits for the account's verification mail in OUTBOX/new. */
static int wait_code(const char *outbox, const char *account, char *code)
{
	char dir[4096], path[8192];
	snprintf(dir, sizeof(dir), "%s/new", outbox);
	for (int waited_ms = 0; waited_ms < TOUR_MAIL_WAIT_MS; waited_ms += 50) {
		DIR *d = opendir(dir);
		struct dirent *e;
		int found = 0;
		while (d && !found && (e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			found = code_in_file(path, account, code);
		}
		if (d)
			closedir(d);
		if (found)
			return 0;
		nanosleep(&(struct timespec){ .tv_nsec = 50 * 1000 * 1000 }, NULL);
	}
	return -1;
}

/* Opens and verifies one account; its number in account. */
static int open_verified(esbank_t *c, const char *outbox, const char *email, char *account)
{
	char code[TOUR_CODE_BYTES_MAX];
	esbank_reply_t r;

	int rc = esbank_open_account(c, email, "correct horse battery", NULL, &r);
	if (rc < 0 || !r.ok)
		return fail("open_account", rc, &r);
	strcpy(account, r.account);
	printf("opened %s (seq %" PRIu64 ")\n", account, r.seq);
	esbank_reply_free(&r);
	if (wait_code(outbox, account, code) < 0) {
		fprintf(stderr, "bank_tour: no verification mail for %s\n", account);
		return 100;
	}
	rc = esbank_verify_account(c, account, code, NULL, &r);
	if (rc < 0 || !r.ok)
		return fail("verify_account", rc, &r);
	printf("verified %s (seq %" PRIu64 ")\n", account, r.seq);
	esbank_reply_free(&r);
	return 0;
}

typedef struct {
	int replies;
	int events;
	bool reached; /* the subscription handed out until_seq */
	uint64_t until_seq;
	esbank_async_t *link;
} tour_async_t;

/* Ends the loop once every call is answered and the event was seen (the
 * bus answers subscribe itself, so its events may overtake the replies). */
static void maybe_done(tour_async_t *t)
{
	if (t->reached && t->replies == TOUR_PIPELINE)
		esbank_async_close(t->link);
}

static void on_balance(esbank_async_t *a, int status, const esbank_reply_t *r, void *arg)
{
	tour_async_t *t = arg;
	if (status == 0 && r->ok && r->has_balance)
		printf("async balance %s %" PRId64 "\n", r->account, r->balance);
	else
		printf("async get_account failed: %d %s\n", status, status ? "" : r->error);
	t->replies++;
	maybe_done(t);
}

static void on_subscribed(esbank_async_t *a, int status, const esbank_reply_t *r, void *arg)
{
	printf("subscribed: %s\n", status == 0 && r->ok ? "ok" : "refused");
}

static void on_event(esbank_async_t *a, const esbank_reply_t *ev, void *arg)
{
	tour_async_t *t = arg;
	char type[64] = "";
	esbank_reply_get_str(ev, "type", type, sizeof(type));
	t->events++;
	if (ev->seq == t->until_seq) {
		char *json = esbank_reply_json(ev);
		printf("event %" PRIu64 " %s %s\n", ev->seq, type, json ? json : "?");
		free(json);
		t->reached = true;
		maybe_done(t);
	}
}

/* Pipelines TOUR_PIPELINE balance reads, then follows the log to until_seq. */
static int async_part(const char *run, const char *a1, const char *a2, uint64_t until_seq)
{
	uv_loop_t loop;
	esbank_request_t req;
	char why[ESBANK_WHY_BYTES_MAX];
	tour_async_t t = { .until_seq = until_seq };

	uv_loop_init(&loop);
	int rc = esbank_async_connect(&loop, run, &t.link, why, sizeof(why));
	if (rc < 0) {
		fprintf(stderr, "bank_tour: %s\n", why);
		return 111;
	}
	for (int i = 0; i < TOUR_PIPELINE && rc == 0; i++) {
		esbank_req_get_account(&req, i % 2 ? a2 : a1);
		rc = esbank_async_call(t.link, &req, on_balance, &t);
	}
	printf("in flight: %zu\n", esbank_async_inflight(t.link));
	if (rc == 0)
		rc = esbank_async_subscribe(t.link, 1, on_event, on_subscribed, &t);
	if (rc < 0)
		esbank_async_close(t.link);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	printf("async replies %d, events %d\n", t.replies, t.events);
	return rc < 0 || t.replies != TOUR_PIPELINE ? 100 : 0;
}

int main(int argc, char **argv)
{
	char why[ESBANK_WHY_BYTES_MAX], a1[32], a2[32];
	esbank_t *c;
	esbank_reply_t r;

	if (argc != 3) {
		fprintf(stderr, "usage: bank_tour RUN OUTBOX\n");
		return 100;
	}
	int rc = esbank_connect(argv[1], &c, why, sizeof(why));
	if (rc < 0) {
		fprintf(stderr, "bank_tour: %s\n", why);
		return 111;
	}
	char alice[64], bob[64];
	snprintf(alice, sizeof(alice), "tour-alice-%ld@example.com", (long)getpid());
	snprintf(bob, sizeof(bob), "tour-bob-%ld@example.com", (long)getpid());
	rc = open_verified(c, argv[2], alice, a1);
	if (rc == 0)
		rc = open_verified(c, argv[2], bob, a2);
	if (rc)
		return rc;
	char key[64];
	snprintf(key, sizeof(key), "tour-transfer-%ld", (long)getpid());
	rc = esbank_transfer(c, a1, a2, 1250, key, &r);
	if (rc < 0 || !r.ok)
		return fail("transfer", rc, &r);
	printf("transferred 1250 (seq %" PRIu64 ", balance %" PRId64 ")\n", r.seq, r.balance);
	uint64_t seq = r.seq;
	esbank_reply_free(&r);
	rc = esbank_transfer(c, a1, a1, 1, NULL, &r);
	printf("same account: %s\n", rc == 0 && !r.ok ? r.error : "?");
	esbank_reply_free(&r);
	esbank_close(c);
	return async_part(argv[1], a1, a2, seq);
}
