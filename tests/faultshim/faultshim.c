/*
 * faultshim.c - an LD_PRELOAD library that injects disk faults into the
 * real programs for the integration tests (tests/integration/faultshim.py).
 *
 * It wraps fsync, fdatasync, write, pwrite, pwrite64, writev, pwritev and
 * pwritev64.
 * With ESBANK_FAULT_FILE unset, every call goes straight to libc. With it
 * set to a path, that control file is read again whenever its mtime or size
 * changes (one stat per wrapped call) and holds rules, one per line:
 *
 *   OP ACTION [MATCH [COUNT]]
 *
 *   OP      fsync   fsync and fdatasync
 *           write   write, pwrite, pwrite64, writev, pwritev and pwritev64
 *   ACTION  eio     fail with EIO and do nothing (fsync, write)
 *           enospc  fail with ENOSPC and do nothing (write)
 *           pause   block until the rule is gone from the file (fsync,
 *                   write): before blocking, the shim writes
 *                   "<pid> <path>\n" to <control file>.paused.<pid>, and
 *                   removes that file when it goes on; a process killed
 *                   while paused never ran the call
 *           short   write only the first half of the bytes (at least 1) and
 *                   return that count, as a full disk may (write)
 *           torn    write the first half of the bytes, then fail with EIO
 *                   (write): what a crash or a fault mid-write leaves
 *   MATCH   a substring of the file's path (readlink of /proc/self/fd/N);
 *           "*" or absent matches every regular file. Sockets, pipes and
 *           terminals are never matched, so the processes still talk.
 *   COUNT   how many matching calls the rule hits in each process before it
 *           is spent (absent: every one). Counted per process and reset when
 *           the file changes.
 *
 * The first matching rule of a call's OP wins. Lines starting with '#' and
 * blank lines are ignored; a malformed line is ignored too, with a note on
 * stderr. Each hit is written to stderr as "faultshim: pid P: OP ACTION PATH"
 * so that the test's log shows what was injected.
 *
 * Written here rather than taken from a package: Debian has no library that
 * injects errors into chosen calls on chosen paths while a process runs
 * (libfiu needs its own build-time hooks in the program).
 */
/* Every wrapped name must be the plain libc symbol, not the *64 alias that
 * _FILE_OFFSET_BITS=64 redirects pwrite to. */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define FAULTSHIM_RULES_MAX 16
#define FAULTSHIM_MATCH_MAX 200
#define FAULTSHIM_FILE_BYTES_MAX 4096
#define FAULTSHIM_PAUSE_POLL_NS 5000000L /* 5 ms */

enum faultshim_op { FAULTSHIM_FSYNC, FAULTSHIM_WRITE };
enum faultshim_action {
	FAULTSHIM_NONE,
	FAULTSHIM_EIO,
	FAULTSHIM_ENOSPC,
	FAULTSHIM_PAUSE,
	FAULTSHIM_SHORT,
	FAULTSHIM_TORN,
};

typedef struct {
	enum faultshim_op op;
	enum faultshim_action action;
	char match[FAULTSHIM_MATCH_MAX];
	long left; /* calls still to hit; -1: unlimited */
} faultshim_rule_t;

static pthread_mutex_t faultshim_lock = PTHREAD_MUTEX_INITIALIZER;
static faultshim_rule_t faultshim_rules[FAULTSHIM_RULES_MAX];
static int faultshim_rules_n;
static struct timespec faultshim_mtime;
static off_t faultshim_size = -1;

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static ssize_t (*real_pwritev64)(int, const struct iovec *, int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);

static void *faultshim_next(const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);
	if (!f)
		abort();
	return f;
}

__attribute__((constructor)) static void faultshim_init(void)
{
	real_write = faultshim_next("write");
	real_pwrite = faultshim_next("pwrite");
	real_pwrite64 = faultshim_next("pwrite64");
	real_writev = faultshim_next("writev");
	real_pwritev = faultshim_next("pwritev");
	real_pwritev64 = faultshim_next("pwritev64");
	real_fsync = faultshim_next("fsync");
	real_fdatasync = faultshim_next("fdatasync");
}

static void faultshim_say(const char *fmt, const char *a, const char *b, const char *c)
{
	char line[512];
	int n = snprintf(line, sizeof(line), fmt, (int)getpid(), a, b, c);
	if (n > 0)
		real_write(2, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static int faultshim_parse_line(char *line, faultshim_rule_t *r)
{
	char op[16], action[16], match[FAULTSHIM_MATCH_MAX] = "*";
	long count = -1;
	int n = sscanf(line, "%15s %15s %199s %ld", op, action, match, &count);
	if (n < 2)
		return -1;
	if (strcmp(op, "fsync") == 0)
		r->op = FAULTSHIM_FSYNC;
	else if (strcmp(op, "write") == 0)
		r->op = FAULTSHIM_WRITE;
	else
		return -1;
	static const char *names[] = {"", "eio", "enospc", "pause", "short", "torn"};
	r->action = FAULTSHIM_NONE;
	for (int i = 1; i < (int)(sizeof(names) / sizeof(names[0])); i++)
		if (strcmp(action, names[i]) == 0)
			r->action = (enum faultshim_action)i;
	if (r->action == FAULTSHIM_NONE)
		return -1;
	if (r->op == FAULTSHIM_FSYNC && r->action != FAULTSHIM_EIO && r->action != FAULTSHIM_PAUSE)
		return -1;
	snprintf(r->match, sizeof(r->match), "%s", match);
	r->left = count;
	return 0;
}

/* Re-reads the control file when it changed. Called with the lock held. */
static void faultshim_reload(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		faultshim_rules_n = 0;
		faultshim_size = -1;
		return;
	}
	if (st.st_size == faultshim_size && st.st_mtim.tv_sec == faultshim_mtime.tv_sec &&
	    st.st_mtim.tv_nsec == faultshim_mtime.tv_nsec)
		return;
	faultshim_size = st.st_size;
	faultshim_mtime = st.st_mtim;
	faultshim_rules_n = 0;
	char buf[FAULTSHIM_FILE_BYTES_MAX + 1];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, FAULTSHIM_FILE_BYTES_MAX);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	char *save = NULL;
	for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		while (*line == ' ' || *line == '\t')
			line++;
		if (*line == '\0' || *line == '#' || faultshim_rules_n == FAULTSHIM_RULES_MAX)
			continue;
		if (faultshim_parse_line(line, &faultshim_rules[faultshim_rules_n]) == 0)
			faultshim_rules_n++;
		else
			faultshim_say("faultshim: pid %d: ignoring rule '%s'%s%s\n", line, "", "");
	}
}

/* The path of fd if it is a regular file, else "". */
static void faultshim_fd_path(int fd, char *out, size_t cap)
{
	struct stat st;
	out[0] = '\0';
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return;
	char link[64];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, out, cap - 1);
	out[n > 0 ? n : 0] = '\0';
}

/* The action for this call, and the path it matched (for messages). */
static enum faultshim_action faultshim_lookup(enum faultshim_op op, int fd, char *path, size_t cap)
{
	const char *ctl = getenv("ESBANK_FAULT_FILE");
	if (!ctl || !*ctl)
		return FAULTSHIM_NONE;
	faultshim_fd_path(fd, path, cap);
	if (!path[0])
		return FAULTSHIM_NONE;
	enum faultshim_action a = FAULTSHIM_NONE;
	pthread_mutex_lock(&faultshim_lock);
	faultshim_reload(ctl);
	for (int i = 0; i < faultshim_rules_n; i++) {
		faultshim_rule_t *r = &faultshim_rules[i];
		if (r->op != op || r->left == 0)
			continue;
		if (strcmp(r->match, "*") != 0 && !strstr(path, r->match))
			continue;
		if (r->left > 0)
			r->left--;
		a = r->action;
		break;
	}
	pthread_mutex_unlock(&faultshim_lock);
	return a;
}

static const char *faultshim_action_name(enum faultshim_action a)
{
	switch (a) {
	case FAULTSHIM_EIO: return "eio";
	case FAULTSHIM_ENOSPC: return "enospc";
	case FAULTSHIM_PAUSE: return "pause";
	case FAULTSHIM_SHORT: return "short";
	case FAULTSHIM_TORN: return "torn";
	default: return "none";
	}
}

/* True while a pause rule for op still matches path in the control file. */
static int faultshim_still_paused(enum faultshim_op op, const char *path)
{
	const char *ctl = getenv("ESBANK_FAULT_FILE");
	int paused = 0;
	pthread_mutex_lock(&faultshim_lock);
	faultshim_reload(ctl);
	for (int i = 0; i < faultshim_rules_n && !paused; i++) {
		const faultshim_rule_t *r = &faultshim_rules[i];
		paused = r->op == op && r->action == FAULTSHIM_PAUSE &&
		         (strcmp(r->match, "*") == 0 || strstr(path, r->match));
	}
	pthread_mutex_unlock(&faultshim_lock);
	return paused;
}

static void faultshim_pause(enum faultshim_op op, const char *path)
{
	char marker[PATH_MAX];
	snprintf(marker, sizeof(marker), "%s.paused.%d", getenv("ESBANK_FAULT_FILE"), (int)getpid());
	int fd = open(marker, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0) {
		char line[PATH_MAX + 32];
		int n = snprintf(line, sizeof(line), "%d %s\n", (int)getpid(), path);
		if (n > 0)
			real_write(fd, line, (size_t)n);
		close(fd);
	}
	struct timespec ts = {0, FAULTSHIM_PAUSE_POLL_NS};
	while (faultshim_still_paused(op, path))
		nanosleep(&ts, NULL);
	unlink(marker);
}

/* Applies a fault to an fsync-like call: 1 if the call must fail with errno
 * set, 0 if it goes on to libc. */
static int faultshim_fsync_fault(int fd)
{
	char path[PATH_MAX];
	enum faultshim_action a = faultshim_lookup(FAULTSHIM_FSYNC, fd, path, sizeof(path));
	if (a == FAULTSHIM_NONE)
		return 0;
	faultshim_say("faultshim: pid %d: fsync %s %s%s\n", faultshim_action_name(a), path, "");
	if (a == FAULTSHIM_PAUSE) {
		faultshim_pause(FAULTSHIM_FSYNC, path);
		return 0;
	}
	errno = EIO;
	return 1;
}

int fsync(int fd)
{
	return faultshim_fsync_fault(fd) ? -1 : real_fsync(fd);
}

int fdatasync(int fd)
{
	return faultshim_fsync_fault(fd) ? -1 : real_fdatasync(fd);
}

/* The fault for a write of n bytes: sets *n_out to the bytes to really write
 * and returns the action (NONE: write all). */
static enum faultshim_action faultshim_write_fault(int fd, size_t n, size_t *n_out)
{
	char path[PATH_MAX];
	*n_out = n;
	enum faultshim_action a = faultshim_lookup(FAULTSHIM_WRITE, fd, path, sizeof(path));
	if (a == FAULTSHIM_NONE)
		return a;
	faultshim_say("faultshim: pid %d: write %s %s%s\n", faultshim_action_name(a), path, "");
	if (a == FAULTSHIM_PAUSE) {
		faultshim_pause(FAULTSHIM_WRITE, path);
		return FAULTSHIM_NONE;
	}
	if (a == FAULTSHIM_SHORT || a == FAULTSHIM_TORN)
		*n_out = n > 1 ? n / 2 : n;
	return a;
}

/* The result of a faulted write that wrote `done` bytes (or -1). */
static ssize_t faultshim_result(enum faultshim_action a, ssize_t done)
{
	if (a == FAULTSHIM_EIO || a == FAULTSHIM_TORN || a == FAULTSHIM_ENOSPC) {
		errno = a == FAULTSHIM_ENOSPC ? ENOSPC : EIO;
		return -1;
	}
	return done;
}

ssize_t write(int fd, const void *buf, size_t n)
{
	size_t m;
	enum faultshim_action a = faultshim_write_fault(fd, n, &m);
	if (a == FAULTSHIM_EIO || a == FAULTSHIM_ENOSPC)
		return faultshim_result(a, -1);
	ssize_t done = real_write(fd, buf, m);
	return done < 0 || a == FAULTSHIM_NONE ? done : faultshim_result(a, done);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	size_t m;
	enum faultshim_action a = faultshim_write_fault(fd, n, &m);
	if (a == FAULTSHIM_EIO || a == FAULTSHIM_ENOSPC)
		return faultshim_result(a, -1);
	ssize_t done = real_pwrite(fd, buf, m, off);
	return done < 0 || a == FAULTSHIM_NONE ? done : faultshim_result(a, done);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	size_t m;
	enum faultshim_action a = faultshim_write_fault(fd, n, &m);
	if (a == FAULTSHIM_EIO || a == FAULTSHIM_ENOSPC)
		return faultshim_result(a, -1);
	ssize_t done = real_pwrite64(fd, buf, m, off);
	return done < 0 || a == FAULTSHIM_NONE ? done : faultshim_result(a, done);
}

/* The iovec prefix holding the first `keep` bytes of iov: its count, with
 * the last element shortened in *last. */
static int faultshim_iov_prefix(const struct iovec *iov, int cnt, size_t keep,
                                struct iovec *out, int out_max)
{
	int k = 0;
	for (int i = 0; i < cnt && k < out_max && keep > 0; i++) {
		out[k] = iov[i];
		if (out[k].iov_len > keep)
			out[k].iov_len = keep;
		keep -= out[k].iov_len;
		k++;
	}
	return k;
}

#define FAULTSHIM_IOV_MAX 1024

/* positional: 0 writev, 1 pwritev, 2 pwritev64 */
static ssize_t faultshim_vector_real(int fd, const struct iovec *iov, int cnt, off_t off,
                                     int positional)
{
	if (positional == 2)
		return real_pwritev64(fd, iov, cnt, off);
	return positional ? real_pwritev(fd, iov, cnt, off) : real_writev(fd, iov, cnt);
}

static ssize_t faultshim_vector(int fd, const struct iovec *iov, int cnt, off_t off, int positional)
{
	size_t total = 0, m;
	for (int i = 0; i < cnt; i++)
		total += iov[i].iov_len;
	enum faultshim_action a = faultshim_write_fault(fd, total, &m);
	if (a == FAULTSHIM_EIO || a == FAULTSHIM_ENOSPC)
		return faultshim_result(a, -1);
	if (a == FAULTSHIM_NONE)
		return faultshim_vector_real(fd, iov, cnt, off, positional);
	struct iovec part[FAULTSHIM_IOV_MAX];
	int k = faultshim_iov_prefix(iov, cnt, m, part, FAULTSHIM_IOV_MAX);
	ssize_t done = faultshim_vector_real(fd, part, k, off, positional);
	return done < 0 ? done : faultshim_result(a, done);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	return faultshim_vector(fd, iov, cnt, 0, 0);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	return faultshim_vector(fd, iov, cnt, off, 1);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off_t off)
{
	return faultshim_vector(fd, iov, cnt, off, 2);
}
