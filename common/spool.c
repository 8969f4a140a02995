/*
 * spool.c - the mail spool and address book (see spool.h): written by the
 * mailer, read and re-queued by `esbank mail`.
 *
 * DATA/mail/queue/<seq>   a mail accepted from the bus and not yet delivered
 * DATA/mail/dead/<seq>    a mail that failed for good (reason inside)
 *   <seq> is the decimal seq of the event the mail is about (no leading
 *   zeros): one event sends at most one mail, so it is the mail's id.
 *   Files are written whole: ".tmp-<seq>" in the same directory, fsync,
 *   rename; a ".tmp-*" file left by a crash is garbage and is overwritten.
 *   Each file is a block of header lines, an empty line, then the message:
 *     esbank-mail 1\n
 *     seq <decimal>\n
 *     type <event type name>\n             account_opened | code_reissued |
 *                                          money_withdrawn
 *     ts <ms since the epoch>\n            the event's time
 *     to <recipient address>\n
 *     subject <the Subject header>\n
 *     accepted <ms since the epoch>\n      spooled or re-queued then
 *     attempts <decimal>\n                 dead only
 *     reason <one line>\n                  dead only, at most 400 bytes
 *     \n
 *     <the RFC 5322 message (message.c), CRLF line endings>
 *   The lines come in this order; a file that does not parse is refused
 *   (-EBADMSG) and left where it is.
 *   A seq present in both queue/ and dead/ (a crash in the middle of a move)
 *   counts as queued: the mailer removes the dead copy.
 *
 * DATA/mail/addresses   the address book, learned from account_opened events:
 *   one line per learned address, "<16-digit account> <email>\n", appended
 *   (fsync'd before the mails of the same batch are acknowledged). A later
 *   line for the same account wins. A last line without "\n" (torn by a
 *   crash) is cut off when the file is loaded; a malformed line is skipped.
 *   After a failed append or a failed fsync the file is not trusted: a
 *   failed fsync may have dropped its dirty pages while marking them clean
 *   (a second fsync then succeeds with the line lost), and a failed or torn
 *   append may have left a partial line that would swallow the next one. So
 *   the book is never fsync'd twice: nothing more is appended, and the next
 *   spool_sync() writes the whole book from memory to "addresses.tmp"
 *   (fsync), renames it over "addresses" and fsyncs DATA/mail.
 *   Forgetting an address (an erased account) takes the same path: nothing
 *   more is appended and the next spool_sync() writes the book without it.
 */
#include "spool.h"

#include "fileio.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SPOOL_MAGIC "esbank-mail 1"
#define SPOOL_NAME_BYTES 32
#define SPOOL_ADDR_LINE_MAX (LEDGER_ACCOUNT_DIGITS + 1 + LEDGER_EMAIL_BYTES_MAX + 1)
#define SPOOL_ADDRS_CAP_MIN 1024
#define SPOOL_ADDR_READ_BYTES 65536
#define SPOOL_ADDR_FILE "addresses"
#define SPOOL_ADDR_TMP "addresses.tmp"

static int spool_opendir_at(int at, const char *name, int *fd)
{
	if (mkdirat(at, name, 0700) < 0 && errno != EEXIST)
		return -errno;
	*fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return *fd < 0 ? -errno : 0;
}

static int spool_mkdirs(const char *path)
{
	char buf[SPOOL_PATH_MAX];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int spool_open(spool_t *s, const char *mail_dir)
{
	memset(s, 0, sizeof(*s));
	s->dir_fd = s->queue_fd = s->dead_fd = s->addr_fd = -1;
	if (snprintf(s->dir, sizeof(s->dir), "%s", mail_dir) >= (int)sizeof(s->dir))
		return -ENAMETOOLONG;
	int rc = spool_mkdirs(s->dir);
	if (rc < 0)
		return rc;
	s->dir_fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dir_fd < 0)
		return -errno;
	rc = spool_opendir_at(s->dir_fd, "queue", &s->queue_fd);
	if (rc == 0)
		rc = spool_opendir_at(s->dir_fd, "dead", &s->dead_fd);
	return rc;
}

void spool_close(spool_t *s)
{
	int *fds[] = { &s->dir_fd, &s->queue_fd, &s->dead_fd, &s->addr_fd };
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
	for (size_t i = 0; i < s->addr_cap; i++)
		free(s->addrs[i].email);
	free(s->addrs);
	s->addrs = NULL;
	s->addr_cap = s->addr_n = 0;
}

void spool_one_line(char *s)
{
	for (unsigned char *p = (unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			*p = ' ';
}

/* ---- the file format ---- */

int spool_encode(const spool_entry_t *e, char *buf, size_t cap, size_t *len)
{
	const char *type = ledger_event_type_name(e->type);
	int n = snprintf(buf, cap,
	                 SPOOL_MAGIC "\nseq %" PRIu64 "\ntype %s\nts %" PRId64
	                 "\nto %s\nsubject %s\naccepted %" PRId64 "\n",
	                 e->seq, type ? type : "?", e->ts_ms, e->to, e->subject, e->accepted_ms);
	if (n < 0 || (size_t)n >= cap)
		return -ENOBUFS;
	size_t off = (size_t)n;
	if (e->reason[0]) {
		n = snprintf(buf + off, cap - off, "attempts %" PRIu32 "\nreason %s\n",
		             e->attempts, e->reason);
		if (n < 0 || (size_t)n >= cap - off)
			return -ENOBUFS;
		off += (size_t)n;
	}
	if (off + 1 + e->msg_len > cap)
		return -ENOBUFS;
	buf[off++] = '\n';
	memcpy(buf + off, e->msg, e->msg_len);
	*len = off + e->msg_len;
	return 0;
}

/* The value of the header line "<name> <value>\n" at *p; advances *p. */
static int spool_field(const char **p, const char *end, const char *name, char *out,
                       size_t cap)
{
	size_t nl = strlen(name);
	const char *eol = memchr(*p, '\n', (size_t)(end - *p));
	if (!eol || (size_t)(eol - *p) < nl + 1 || memcmp(*p, name, nl) != 0 || (*p)[nl] != ' ')
		return -EBADMSG;
	size_t vlen = (size_t)(eol - *p) - nl - 1;
	if (vlen >= cap || memchr(*p + nl + 1, '\0', vlen))
		return -EBADMSG;
	memcpy(out, *p + nl + 1, vlen);
	out[vlen] = '\0';
	*p = eol + 1;
	return 0;
}

static int spool_field_i64(const char **p, const char *end, const char *name, int64_t min,
                           int64_t *v)
{
	char buf[24], *stop;
	if (spool_field(p, end, name, buf, sizeof(buf)) < 0 || buf[0] < '0' || buf[0] > '9')
		return -EBADMSG;
	errno = 0;
	long long x = strtoll(buf, &stop, 10);
	if (errno || *stop || x < min)
		return -EBADMSG;
	*v = x;
	return 0;
}

static int spool_decode_dead(const char **p, const char *end, spool_entry_t *e)
{
	int64_t attempts;
	if (spool_field_i64(p, end, "attempts", 0, &attempts) < 0 || attempts > UINT32_MAX)
		return -EBADMSG;
	e->attempts = (uint32_t)attempts;
	return spool_field(p, end, "reason", e->reason, sizeof(e->reason));
}

int spool_decode(const char *buf, size_t len, spool_entry_t *e)
{
	const char *p = buf, *end = buf + len;
	char magic[sizeof(SPOOL_MAGIC) + 1], type[32];
	int64_t seq;
	memset(e, 0, offsetof(spool_entry_t, msg));
	const char *eol = memchr(p, '\n', len);
	if (!eol || (size_t)(eol - p) >= sizeof(magic))
		return -EBADMSG;
	memcpy(magic, p, (size_t)(eol - p));
	magic[eol - p] = '\0';
	p = eol + 1;
	if (strcmp(magic, SPOOL_MAGIC) != 0 || spool_field_i64(&p, end, "seq", 1, &seq) < 0 ||
	    spool_field(&p, end, "type", type, sizeof(type)) < 0 ||
	    spool_field_i64(&p, end, "ts", 0, &e->ts_ms) < 0 ||
	    spool_field(&p, end, "to", e->to, sizeof(e->to)) < 0 ||
	    spool_field(&p, end, "subject", e->subject, sizeof(e->subject)) < 0 ||
	    spool_field_i64(&p, end, "accepted", 0, &e->accepted_ms) < 0)
		return -EBADMSG;
	e->seq = (uint64_t)seq;
	e->type = ledger_event_type_parse(type, strlen(type));
	if (e->type == 0)
		return -EBADMSG;
	if (p < end && *p == 'a' && spool_decode_dead(&p, end, e) < 0)
		return -EBADMSG;
	if (p >= end || *p != '\n' || (size_t)(end - p - 1) > sizeof(e->msg))
		return -EBADMSG;
	e->msg_len = (size_t)(end - p - 1);
	memcpy(e->msg, p + 1, e->msg_len);
	return 0;
}

/* ---- files ---- */

static int spool_box_fd(const spool_t *s, spool_box_t box)
{
	return box == SPOOL_DEAD ? s->dead_fd : s->queue_fd;
}

static void spool_name(char out[SPOOL_NAME_BYTES], const char *prefix, uint64_t seq)
{
	snprintf(out, SPOOL_NAME_BYTES, "%s%" PRIu64, prefix, seq);
}

/* Writes data as dir_fd/name via a temporary file, fsync'd, renamed. */
static int spool_write_at(int dir_fd, const char *tmp, const char *name, const char *data,
                          size_t len)
{
	int fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int rc = fileio_write_synced(fd, data, len);
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && renameat(dir_fd, tmp, dir_fd, name) < 0)
		rc = -errno;
	if (rc < 0)
		unlinkat(dir_fd, tmp, 0);
	return rc;
}

static int spool_write_entry(spool_t *s, spool_box_t box, const spool_entry_t *e)
{
	static char buf[SPOOL_FILE_BYTES_MAX];
	char tmp[SPOOL_NAME_BYTES], name[SPOOL_NAME_BYTES];
	size_t len;
	int rc = spool_encode(e, buf, sizeof(buf), &len);
	if (rc < 0)
		return rc;
	spool_name(tmp, ".tmp-", e->seq);
	spool_name(name, "", e->seq);
	return spool_write_at(spool_box_fd(s, box), tmp, name, buf, len);
}

int spool_put(spool_t *s, const spool_entry_t *e)
{
	int rc = spool_write_entry(s, SPOOL_QUEUE, e);
	if (rc == 0)
		s->queue_dirty = true;
	return rc;
}

static int spool_addr_sync(spool_t *s);

int spool_sync(spool_t *s)
{
	int rc = 0;
	if (s->queue_dirty && fsync(s->queue_fd) < 0)
		rc = -errno; /* still dirty: the caller writes the names again (spool.h) */
	else
		s->queue_dirty = false;
	int addr_rc = spool_addr_sync(s);
	return rc ? rc : addr_rc;
}

int spool_read(spool_t *s, spool_box_t box, uint64_t seq, spool_entry_t *e)
{
	static char buf[SPOOL_FILE_BYTES_MAX + 1];
	char name[SPOOL_NAME_BYTES];
	spool_name(name, "", seq);
	int fd = openat(spool_box_fd(s, box), name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t len = 0;
	ssize_t r = 1;
	while (len < sizeof(buf) && r != 0) {
		r = read(fd, buf + len, sizeof(buf) - len);
		if (r < 0 && errno != EINTR)
			break;
		len += r > 0 ? (size_t)r : 0;
	}
	int err = r < 0 ? errno : 0;
	close(fd);
	if (err)
		return -err;
	if (len > SPOOL_FILE_BYTES_MAX || spool_decode(buf, len, e) < 0 || e->seq != seq)
		return -EBADMSG;
	return 0;
}

bool spool_exists(spool_t *s, spool_box_t box, uint64_t seq)
{
	char name[SPOOL_NAME_BYTES];
	struct stat st;
	spool_name(name, "", seq);
	return fstatat(spool_box_fd(s, box), name, &st, 0) == 0;
}

int spool_remove(spool_t *s, uint64_t seq)
{
	char name[SPOOL_NAME_BYTES];
	spool_name(name, "", seq);
	if (unlinkat(s->queue_fd, name, 0) < 0 && errno != ENOENT)
		return -errno;
	s->queue_dirty = true;
	return 0;
}

int spool_bury(spool_t *s, spool_entry_t *e, const char *reason, uint32_t attempts)
{
	snprintf(e->reason, sizeof(e->reason), "%s", reason && *reason ? reason : "failed");
	spool_one_line(e->reason);
	e->attempts = attempts;
	int rc = spool_write_entry(s, SPOOL_DEAD, e);
	if (rc == 0 && fsync(s->dead_fd) < 0)
		rc = -errno;
	if (rc == 0)
		rc = spool_remove(s, e->seq);
	return rc;
}

int spool_requeue(spool_t *s, uint64_t seq, int64_t now_ms)
{
	static spool_entry_t e;
	int rc = spool_read(s, SPOOL_DEAD, seq, &e);
	if (rc < 0)
		return rc;
	e.reason[0] = '\0';
	e.attempts = 0;
	e.accepted_ms = now_ms;
	rc = spool_write_entry(s, SPOOL_QUEUE, &e);
	if (rc == 0 && fsync(s->queue_fd) < 0)
		rc = -errno;
	char name[SPOOL_NAME_BYTES];
	spool_name(name, "", seq);
	if (rc == 0 && unlinkat(s->dead_fd, name, 0) < 0)
		rc = -errno;
	if (rc == 0 && fsync(s->dead_fd) < 0)
		rc = -errno;
	return rc;
}

static int spool_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The seq a file name holds: digits only, no leading zero. 0 when not one. */
static uint64_t spool_name_seq(const char *name)
{
	if (name[0] < '1' || name[0] > '9' || strlen(name) > 20)
		return 0;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(name, &end, 10);
	return (errno || *end) ? 0 : (uint64_t)v;
}

int spool_list(spool_t *s, spool_box_t box, uint64_t **seqs, size_t *n)
{
	*seqs = NULL;
	*n = 0;
	int fd = openat(spool_box_fd(s, box), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		int err = errno;
		if (fd >= 0)
			close(fd);
		return -err;
	}
	size_t cap = 0;
	int rc = 0;
	struct dirent *de;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		uint64_t seq = spool_name_seq(de->d_name);
		if (seq == 0)
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			uint64_t *p = realloc(*seqs, cap * sizeof(*p));
			if (!p) {
				rc = -ENOMEM;
				break;
			}
			*seqs = p;
		}
		(*seqs)[(*n)++] = seq;
	}
	closedir(d);
	if (*n > 1)
		qsort(*seqs, *n, sizeof(**seqs), spool_cmp_u64);
	return rc;
}

/* ---- the address book ---- */

static size_t spool_addr_slot(const spool_addr_t *t, size_t cap, uint64_t account)
{
	size_t i = (size_t)((account * 0x9E3779B97F4A7C15ULL) >> 20) & (cap - 1);
	while (t[i].email && t[i].account != account)
		i = (i + 1) & (cap - 1);
	return i;
}

static int spool_addr_grow(spool_t *s)
{
	size_t cap = s->addr_cap ? s->addr_cap * 2 : SPOOL_ADDRS_CAP_MIN;
	spool_addr_t *t = calloc(cap, sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < s->addr_cap; i++)
		if (s->addrs[i].email)
			t[spool_addr_slot(t, cap, s->addrs[i].account)] = s->addrs[i];
	free(s->addrs);
	s->addrs = t;
	s->addr_cap = cap;
	return 0;
}

/* Sets account -> email in memory; 1 when it changed, 0 when known, -errno. */
static int spool_addr_set(spool_t *s, uint64_t account, const char *email)
{
	if (s->addr_n + 1 > s->addr_cap / 2) {
		if (s->addr_n >= SPOOL_ADDRS_MAX)
			return -ENOSPC;
		int rc = spool_addr_grow(s);
		if (rc < 0)
			return rc;
	}
	spool_addr_t *a = &s->addrs[spool_addr_slot(s->addrs, s->addr_cap, account)];
	if (a->email && strcmp(a->email, email) == 0)
		return 0;
	char *copy = strdup(email);
	if (!copy)
		return -ENOMEM;
	if (!a->email)
		s->addr_n++;
	free(a->email);
	a->email = copy;
	a->account = account;
	return 1;
}

const char *spool_addr_find(const spool_t *s, uint64_t account)
{
	if (!s->addr_cap)
		return NULL;
	return s->addrs[spool_addr_slot(s->addrs, s->addr_cap, account)].email;
}

int spool_addr_forget(spool_t *s, uint64_t account)
{
	if (!s->addr_cap)
		return 0;
	size_t mask = s->addr_cap - 1, hole = spool_addr_slot(s->addrs, s->addr_cap, account);
	if (!s->addrs[hole].email)
		return 0;
	memset(s->addrs[hole].email, 0, strlen(s->addrs[hole].email));
	free(s->addrs[hole].email);
	s->addrs[hole].email = NULL;
	s->addr_n--;
	/* backward shift: later entries of the probe run move into the hole */
	for (size_t i = (hole + 1) & mask; s->addrs[i].email; i = (i + 1) & mask) {
		size_t home = spool_addr_slot(s->addrs, s->addr_cap, s->addrs[i].account);
		if (home == i)
			continue;
		s->addrs[hole] = s->addrs[i];
		s->addrs[i] = (spool_addr_t){ 0 };
		hole = i;
	}
	s->addr_dirty = true;
	s->addr_broken = true; /* the file still has the line: written anew by spool_sync */
	return 0;
}

/* Parses one line (without "\n"); malformed lines are skipped. */
static int spool_addr_line(spool_t *s, char *line)
{
	uint64_t account;
	size_t n = strlen(line);
	if (n < LEDGER_ACCOUNT_DIGITS + 2 || line[LEDGER_ACCOUNT_DIGITS] != ' ' ||
	    !ledger_account_parse(line, LEDGER_ACCOUNT_DIGITS, &account))
		return 0;
	int rc = spool_addr_set(s, account, line + LEDGER_ACCOUNT_DIGITS + 1);
	return rc < 0 ? rc : 0;
}

/* Reads every whole line of fd; *good is the length of the whole lines. */
static int spool_addr_read(spool_t *s, int fd, off_t *good)
{
	static char buf[SPOOL_ADDR_READ_BYTES];
	char line[SPOOL_ADDR_LINE_MAX + 1];
	size_t ll = 0;
	off_t pos = 0;
	ssize_t r;
	*good = 0;
	while ((r = read(fd, buf, sizeof(buf))) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		for (ssize_t i = 0; i < r; i++, pos++) {
			if (buf[i] != '\n') {
				ll += ll < SPOOL_ADDR_LINE_MAX; /* too long: garbage, skipped */
				line[ll - 1] = buf[i];
				continue;
			}
			line[ll] = '\0';
			int rc = ll < SPOOL_ADDR_LINE_MAX ? spool_addr_line(s, line) : 0;
			if (rc < 0)
				return rc;
			ll = 0;
			*good = pos + 1;
		}
	}
	return 0;
}

int spool_addr_load(spool_t *s)
{
	int fd = openat(s->dir_fd, SPOOL_ADDR_FILE, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	off_t good;
	int rc = spool_addr_read(s, fd, &good);
	struct stat st;
	if (rc == 0 && fstat(fd, &st) == 0 && st.st_size != good && ftruncate(fd, good) < 0)
		rc = -errno;
	if (rc < 0) {
		close(fd);
		return rc;
	}
	s->addr_fd = fd;
	return 0;
}

int spool_addr_learn(spool_t *s, uint64_t account, const char *email)
{
	assert(s->addr_fd >= 0);
	int rc = spool_addr_set(s, account, email);
	if (rc <= 0)
		return rc;
	char line[SPOOL_ADDR_LINE_MAX + 2];
	char num[LEDGER_ACCOUNT_DIGITS + 1];
	ledger_account_format(account, num);
	int n = snprintf(line, sizeof(line), "%s %s\n", num, email);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -EINVAL;
	s->addr_dirty = true;
	if (!s->addr_broken && fileio_write_all(s->addr_fd, line, (size_t)n) < 0)
		s->addr_broken = true; /* maybe a partial line: spool_sync() rewrites the file */
	return 0;
}

/* Writes every address of the book to fd, one line each. 0 or -errno. */
static int spool_addr_write_book(const spool_t *s, int fd)
{
	static char buf[SPOOL_ADDR_READ_BYTES];
	size_t len = 0;
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < s->addr_cap; i++) {
		if (!s->addrs[i].email)
			continue;
		if (len + SPOOL_ADDR_LINE_MAX + 2 > sizeof(buf)) {
			rc = fileio_write_all(fd, buf, len);
			len = 0;
		}
		char num[LEDGER_ACCOUNT_DIGITS + 1];
		ledger_account_format(s->addrs[i].account, num);
		int n = snprintf(buf + len, sizeof(buf) - len, "%s %s\n", num, s->addrs[i].email);
		assert(n > 0 && (size_t)n < sizeof(buf) - len);
		len += (size_t)n;
	}
	return rc == 0 && len ? fileio_write_all(fd, buf, len) : rc;
}

/*
 * Replaces the file by the whole book: addresses.tmp written, fsync'd,
 * renamed over addresses, DATA/mail fsync'd, then reopened for appending.
 * 0 or -errno; on failure the book stays broken and is rewritten next time.
 */
static int spool_addr_rewrite(spool_t *s)
{
	int fd = openat(s->dir_fd, SPOOL_ADDR_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int rc = spool_addr_write_book(s, fd);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && renameat(s->dir_fd, SPOOL_ADDR_TMP, s->dir_fd, SPOOL_ADDR_FILE) < 0)
		rc = -errno;
	if (rc < 0) {
		unlinkat(s->dir_fd, SPOOL_ADDR_TMP, 0);
		return rc;
	}
	if (fsync(s->dir_fd) < 0)
		return -errno; /* the rename may not last: written anew next time */
	fd = openat(s->dir_fd, SPOOL_ADDR_FILE, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (s->addr_fd >= 0)
		close(s->addr_fd);
	s->addr_fd = fd;
	s->addr_broken = false;
	return 0;
}

/* Makes the appended lines durable; after any failure, the whole book. */
static int spool_addr_sync(spool_t *s)
{
	if (!s->addr_dirty)
		return 0;
	if (!s->addr_broken && s->addr_fd >= 0 && fsync(s->addr_fd) < 0)
		s->addr_broken = true; /* never fsync'd again: see the top of this file */
	int rc = s->addr_broken ? spool_addr_rewrite(s) : 0;
	if (rc == 0)
		s->addr_dirty = false;
	return rc;
}
