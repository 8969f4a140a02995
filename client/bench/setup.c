/*
 * setup.c - the accounts `esbank bench` prepares (see setup.h).
 *
 * The accounts' emails are "bench-<tag>-<i>@bench.example", the password
 * BENCH_PASSWORD. The verification codes are read from the Maildir outbox:
 * the mailer names each file after the event's seq (common/mailname.h),
 * which the open_account reply carries, and the body holds
 * ".../api/verify?account_number=<16 digits>&code=<code>" (code
 * URL-encoded). new/ and cur/ are scanned every BENCH_MAIL_POLL_MS until
 * every account has its code, giving up after BENCH_MAIL_WAIT_MS without
 * finding a new one.
 */
#include "setup.h"

#include "event.h"
#include "diag.h"
#include "mailname.h"
#include "msg.h"
#include "output.h"
#include "report.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BENCH_EMAIL_MAX      64
#define BENCH_CODE_MAX       128   /* the mailer's MESSAGE_CODE_BYTES_MAX */
#define BENCH_MAIL_BYTES_MAX 16384 /* the mailer writes at most 8192 */
#define BENCH_MAIL_POLL_MS   20
#define BENCH_MAIL_WAIT_MS   30000
#define BENCH_PATH_MAX       4096

int setup_init(setup_t *s, const bench_config_t *cfg, drive_t *d)
{
	unsigned char tag[sizeof(s->tag) / 2];

	s->cfg = cfg;
	s->drive = d;
	s->numbers = calloc(cfg->accounts, sizeof(*s->numbers));
	s->acct = calloc(cfg->accounts, sizeof(*s->acct));
	if (!s->numbers || !s->acct)
		return -ENOMEM;
	randombytes_buf(tag, sizeof(tag));
	sodium_bin2hex(s->tag, sizeof(s->tag), tag, sizeof(tag));
	return 0;
}

void setup_free(setup_t *s)
{
	for (uint64_t i = 0; s->acct && i < s->cfg->accounts; i++)
		free(s->acct[i].code);
	free(s->numbers);
	free(s->acct);
	free(s->by_seq);
}

void setup_handles(setup_t *s, uv_loop_t *loop)
{
	uv_timer_init(loop, &s->mail);
	s->mail.data = s;
}

void setup_stop(setup_t *s)
{
	s->step = SETUP_OVER;
	if (!uv_is_closing((uv_handle_t *)&s->mail))
		uv_close((uv_handle_t *)&s->mail, NULL);
}

/* ---- open and verify ---- */

static void setup_send(setup_t *s, drive_conn_t *dc, bench_op_t op, uint32_t i)
{
	msgpack_packer *pk = drive_request_begin(dc, op, i, 2);

	if (op == BENCH_OP_OPEN) {
		char email[BENCH_EMAIL_MAX];
		snprintf(email, sizeof(email), "bench-%s-%" PRIu32 "@bench.example", s->tag, i);
		msg_pack_kv_str(pk, "email", email);
		msg_pack_kv_str(pk, "password", BENCH_PASSWORD);
	} else {
		msg_pack_kv_str(pk, "account", s->numbers[i]);
		msg_pack_kv_str(pk, "code", s->acct[i].code);
	}
	drive_request_end(dc);
}

void setup_fill(setup_t *s, drive_conn_t *dc)
{
	if (s->step != SETUP_OPEN && s->step != SETUP_VERIFY)
		return;
	while (drive_room(dc) && s->next < s->cfg->accounts)
		setup_send(s, dc, s->step == SETUP_OPEN ? BENCH_OP_OPEN : BENCH_OP_VERIFY,
			   (uint32_t)s->next++);
}

/* The codes are read from DATA/mail/outbox: fail before opening accounts when it is not there. */
static bool setup_outbox_exists(setup_t *s)
{
	char path[BENCH_PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/mail/outbox/new", s->cfg->data_dir);
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return true;
	drive_fail(s->drive, EXIT_USAGE,
		   "no Maildir at %s: give the server's data directory with --data or ESBANK_DATA",
		   path);
	return false;
}

void setup_start(setup_t *s)
{
	if (!setup_outbox_exists(s))
		return;
	s->step = SETUP_OPEN;
	s->start_ns = uv_hrtime();
	drive_fill_all(s->drive);
}

static bool setup_account_valid(const char *n)
{
	if (strlen(n) != BENCH_ACCOUNT_BYTES || n[0] < '1' || n[0] > '9')
		return false;
	for (const char *p = n; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

static void setup_mail_start(setup_t *s);

static void setup_on_opened(setup_t *s, uint32_t i, const msgpack_object *reply)
{
	if (msg_get_strcpy(reply, "account", s->numbers[i], sizeof(s->numbers[i])) < 0 ||
	    !setup_account_valid(s->numbers[i]) || msg_get_u64(reply, "seq", &s->acct[i].seq) < 0) {
		drive_fail(s->drive, EXIT_TEMPORARY,
			   "open_account replied without a valid account "
			   "number and seq");
		return;
	}
	if (++s->done == s->cfg->accounts)
		setup_mail_start(s);
}

static void setup_on_verified(setup_t *s, uint32_t i)
{
	free(s->acct[i].code);
	s->acct[i].code = NULL;
	if (++s->done < s->cfg->accounts)
		return;
	s->setup_ns = drive_elapsed_ns(s->start_ns);
	s->step = SETUP_OVER;
	if (s->cfg->setup_only)
		drive_stop(s->drive);
	else
		drive_load_start(s->drive, s->numbers);
}

void setup_reply(setup_t *s, bench_op_t op, uint32_t i, const msgpack_object *reply,
		 size_t outcome)
{
	char message[OUTPUT_FIELD_MAX];

	if (outcome != BENCH_OUTCOME_OK) {
		/* A setup request was refused: the bench cannot go on. */
		output_field(reply, "message", message);
		drive_fail(s->drive,
			   report_outcome_temporary(outcome) ? EXIT_TEMPORARY : EXIT_BUG,
			   "%s failed during setup: %s (%s)", mix_op_name(op), message,
			   report_outcome_name(outcome));
	} else if (op == BENCH_OP_OPEN) {
		setup_on_opened(s, i, reply);
	} else {
		setup_on_verified(s, i);
	}
}

/* ---- the mails ---- */

static int setup_by_seq_cmp(const void *x, const void *y)
{
	const setup_by_seq_t *a = x, *b = y;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* The index of the account whose account_opened event has seq and still needs its code. */
static int64_t setup_account_by_seq(setup_t *s, uint64_t seq)
{
	setup_by_seq_t key = {.seq = seq};
	setup_by_seq_t *hit =
	    bsearch(&key, s->by_seq, s->cfg->accounts, sizeof(key), setup_by_seq_cmp);
	if (!hit || s->acct[hit->index].code)
		return -1;
	return hit->index;
}

/* Copies the URL-encoded value at p (up to '&', space or line end) into code, decoded. */
static int setup_url_decode(const char *p, char code[BENCH_CODE_MAX + 1])
{
	size_t n = 0;

	for (; *p && !strchr("& \t\r\n", *p); p++) {
		char c = *p;
		if (c == '%') {
			uint8_t byte;
			/* p[1] first: p[2] is read only when p[1] is not the end */
			if (!p[1] || !event_unhex(p + 1, 2, &byte, 1))
				return -EINVAL;
			c = (char)byte;
			p += 2;
		}
		if (n == BENCH_CODE_MAX)
			return -EINVAL;
		code[n++] = c;
	}
	code[n] = '\0';
	return n ? 0 : -EINVAL;
}

/* Finds "account_number=<number>&code=<code>" in the mail text; 0 or -EINVAL. */
static int setup_mail_parse(const char *text, const char *number, char code[BENCH_CODE_MAX + 1])
{
	char want[64];

	snprintf(want, sizeof(want), "account_number=%s&code=", number);
	const char *p = strstr(text, want);
	return p ? setup_url_decode(p + strlen(want), code) : -EINVAL;
}

/* Reads the mail at path into text (NUL-terminated); 0 or -errno. */
static int setup_mail_read(const char *path, char text[BENCH_MAIL_BYTES_MAX + 1])
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, text, BENCH_MAIL_BYTES_MAX);
	int err = errno;
	close(fd);
	if (n < 0)
		return -err;
	text[n] = '\0';
	return 0;
}

/* Takes the code from the mail file name in dir, when it is one of ours. */
static void setup_mail_take(setup_t *s, const char *dir, const char *name)
{
	static char text[BENCH_MAIL_BYTES_MAX + 1];
	char path[BENCH_PATH_MAX], code[BENCH_CODE_MAX + 1];
	uint64_t seq;

	if (mailname_seq(name, &seq) < 0)
		return;
	int64_t i = setup_account_by_seq(s, seq);
	if (i < 0 || snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return;
	if (setup_mail_read(path, text) < 0 || setup_mail_parse(text, s->numbers[i], code) < 0)
		return;
	s->acct[i].code = strdup(code);
	if (!s->acct[i].code) {
		drive_fail(s->drive, EXIT_TEMPORARY, "out of memory");
		return;
	}
	s->done++;
	s->mail_found_ns = uv_hrtime();
}

/* Takes our codes from the mails in outbox/sub; returns the number of mails seen. */
static uint64_t setup_mail_scan(setup_t *s, const char *sub)
{
	char dir[BENCH_PATH_MAX];
	struct dirent *e;
	uint64_t seen = 0;

	snprintf(dir, sizeof(dir), "%s/mail/outbox/%s", s->cfg->data_dir, sub);
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL && s->done < s->cfg->accounts && s->step == SETUP_MAIL) {
		if (e->d_name[0] == '.')
			continue;
		seen++;
		setup_mail_take(s, dir, e->d_name);
	}
	closedir(d);
	return seen;
}

static void setup_verify_start(setup_t *s)
{
	uv_timer_stop(&s->mail);
	s->step = SETUP_VERIFY;
	s->next = s->done = 0;
	drive_fill_all(s->drive);
}

static void setup_mail_cb(uv_timer_t *t)
{
	setup_t *s = t->data;

	uint64_t seen = setup_mail_scan(s, "new") + setup_mail_scan(s, "cur");
	if (s->step != SETUP_MAIL)
		return;
	/* The mailer may be busy with older mails: give up only when it writes none. */
	if (seen != s->mail_seen) {
		s->mail_seen = seen;
		s->mail_found_ns = uv_hrtime();
	}
	if (s->done == s->cfg->accounts) {
		setup_verify_start(s);
		return;
	}
	if (drive_elapsed_ns(s->mail_found_ns) / 1000000 < BENCH_MAIL_WAIT_MS)
		return;
	drive_fail(s->drive, EXIT_TEMPORARY,
		   "no verification mail for %" PRIu64 " of %" PRIu64 " accounts in "
		   "%s/mail/outbox/new, and no new mail there for %d s: is --data (or "
		   "ESBANK_DATA) the server's data directory, and does it mail to the Maildir "
		   "(--mail maildir)?",
		   s->cfg->accounts - s->done, s->cfg->accounts, s->cfg->data_dir,
		   BENCH_MAIL_WAIT_MS / 1000);
}

static void setup_mail_start(setup_t *s)
{
	s->by_seq = malloc(s->cfg->accounts * sizeof(*s->by_seq));
	if (!s->by_seq) {
		drive_fail(s->drive, EXIT_TEMPORARY, "out of memory");
		return;
	}
	for (uint64_t i = 0; i < s->cfg->accounts; i++)
		s->by_seq[i] = (setup_by_seq_t){.seq = s->acct[i].seq, .index = (uint32_t)i};
	qsort(s->by_seq, s->cfg->accounts, sizeof(*s->by_seq), setup_by_seq_cmp);
	s->step = SETUP_MAIL;
	s->done = 0;
	s->mail_found_ns = uv_hrtime();
	uv_timer_start(&s->mail, setup_mail_cb, 0, BENCH_MAIL_POLL_MS);
}
