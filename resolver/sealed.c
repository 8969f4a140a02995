/*
 * sealed.c - the resolver's sealed store (ledger.h's ledger_sealed_store_t):
 * the accounts' sealed emails kept in a file instead of memory, so that the
 * resolver's memory per account stays small (docs/performance.md, memory).
 *
 * The file is an unnamed temporary file in DATA (O_TMPFILE; where that is
 * not supported, one created and unlinked at once): nothing persists and
 * there is no format to keep. It holds the sealed bytes one after another
 * (ciphertexts the log holds too); a reference is offset + 1. Appends go
 * through a buffer of RESOLVER_SEALED_BUF_BYTES, written when full or when a
 * read needs its bytes: a replay of a million accounts would otherwise cost
 * a million system calls. A failed write ends the resolver (exit 111): the
 * references it gave would read nothing back; the next one replays the log.
 * Erasure overwrites an account's bytes with zeros, in the buffer or the
 * file. A state rebuilt from scratch (reset, first load) truncates it.
 */
#include "resolver.h"

#include "config.h"
#include "diag.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int resolver_sealed_tmpfile(const char *dir)
{
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
		return fd;
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/.resolver-sealed.XXXXXX", dir) >= (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = mkostemp(path, O_CLOEXEC);
	if (fd >= 0)
		unlink(path);
	return fd;
}

static void resolver_sealed_flush(resolver_sealed_t *s)
{
	size_t done = 0;
	while (done < s->buf_n) {
		ssize_t n = pwrite(s->fd, s->buf + done, s->buf_n - done, (off_t)(s->flushed + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			diag_error("sealed emails' file: %s", n < 0 ? strerror(errno) : "short write");
			exit(EXIT_TEMPORARY);
		}
		done += (size_t)n;
	}
	s->flushed += s->buf_n;
	s->buf_n = 0;
}

static uint64_t resolver_sealed_put(void *arg, const uint8_t *p, size_t n)
{
	resolver_sealed_t *s = arg;
	if (s->fd < 0 || n > RESOLVER_SEALED_BUF_BYTES)
		return 0; /* kept in memory */
	if (s->buf_n + n > RESOLVER_SEALED_BUF_BYTES)
		resolver_sealed_flush(s);
	uint64_t ref = s->flushed + s->buf_n + 1;
	memcpy(s->buf + s->buf_n, p, n);
	s->buf_n += n;
	return ref;
}

static int resolver_sealed_get(void *arg, uint64_t ref, uint8_t *out, size_t n)
{
	resolver_sealed_t *s = arg;
	uint64_t off = ref - 1;
	if (off + n > s->flushed)
		resolver_sealed_flush(s);
	size_t done = 0;
	while (done < n) {
		ssize_t got = pread(s->fd, out + done, n - done, (off_t)(off + done));
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return got < 0 ? -errno : -EIO;
		done += (size_t)got;
	}
	return 0;
}

static void resolver_sealed_wipe(void *arg, uint64_t ref, size_t n)
{
	resolver_sealed_t *s = arg;
	uint64_t off = ref - 1;
	if (off >= s->flushed) {
		memset(s->buf + (off - s->flushed), 0, n);
		return;
	}
	uint8_t zero[LEDGER_SEALED_BYTES_MAX] = { 0 };
	if (pwrite(s->fd, zero, n, (off_t)off) != (ssize_t)n) /* the key is gone already */
		diag_warn("sealed emails' file: an erased email's ciphertext not overwritten");
}

void resolver_sealed_attach(resolver_t *r, ledger_t *l)
{
	ledger_sealed_store_t store = { .arg = &r->sealed, .put = resolver_sealed_put,
	                                .get = resolver_sealed_get, .wipe = resolver_sealed_wipe };
	if (r->sealed.fd >= 0)
		ledger_set_sealed_store(l, &store);
}

void resolver_sealed_truncate(resolver_t *r)
{
	resolver_sealed_t *s = &r->sealed;
	s->buf_n = 0;
	s->flushed = 0;
	if (s->fd >= 0 && ftruncate(s->fd, 0) < 0)
		diag_warn("sealed emails' file: cannot truncate it: %s", strerror(errno));
}

int resolver_sealed_open(resolver_t *r)
{
	resolver_sealed_t *s = &r->sealed;
	s->buf = malloc(RESOLVER_SEALED_BUF_BYTES);
	s->fd = s->buf ? resolver_sealed_tmpfile(r->data_dir) : -1;
	if (s->fd < 0) /* not fatal: the sealed emails stay in memory */
		diag_warn("no file for the sealed emails in %s (%s): kept in memory", r->data_dir,
		          s->buf ? strerror(errno) : "out of memory");
	return 0;
}
