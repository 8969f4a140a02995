/*
 * snapfile.c - snapshot files (see snapfile.h).
 *
 * DATA/snapshots/<seq as 20 decimal digits>.snap, all integers big-endian:
 *
 *     0   6  magic     "ESBSNP"
 *     6   2  version   SNAPFILE_VERSION (1)
 *     8   8  seq       the sequence number of the last event in the state
 *    16  32  chain     the log's chain hash at seq (logfile.c): ties the
 *                      snapshot to one history
 *    48   8  body_len  bytes of body
 *    56  32  checksum  BLAKE2b-256 of bytes [0, 56) and the body
 *    88   .  body      the state: one msgpack map, ledger_pack()'s encoding
 *                      (described at the top of ledger.c)
 *
 * A snapshot is valid when the file is exactly 88 + body_len bytes, the
 * magic, version and checksum are right, the name's seq equals the header's
 * and the body decodes with ledger_unpack(). An invalid snapshot is skipped
 * (with a warning, by the caller) for an older one or a full replay; it is
 * never repaired or deleted, so that it can be examined.
 *
 * Written as "<name>.tmp", fsync'd, renamed into place, and the directory
 * fsync'd, so a crash leaves either the old set or the new one (a stale
 * .tmp is overwritten next time).
 */
#include "snapfile.h"

#include "fileio.h"

#include "msg.h"

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

#define SNAPFILE_MAGIC "ESBSNP"
#define SNAPFILE_HEADER_BYTES 88
#define SNAPFILE_CHECKSUMMED_BYTES 56
#define SNAPFILE_PATH_MAX 4096
#define SNAPFILE_BODY_MAX (64ULL << 30)

static void put_be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static uint64_t get_be64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void snapfile_name(char *out, size_t n, const char *data_dir, uint64_t seq,
                          const char *suffix)
{
	snprintf(out, n, "%s/" SNAPFILE_DIR "/%020" PRIu64 ".snap%s", data_dir, seq, suffix);
}

static void snapfile_checksum(const unsigned char *hdr, const char *body, size_t n,
                              unsigned char out[32])
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, hdr, SNAPFILE_CHECKSUMMED_BYTES);
	crypto_generichash_update(&st, (const unsigned char *)body, n);
	crypto_generichash_final(&st, out, 32);
}

/* Removes all but the newest SNAPFILE_KEEP snapshots. */
static void snapfile_prune(const char *data_dir)
{
	uint64_t seqs[SNAPFILE_LIST_MAX];
	int n = snapfile_list(data_dir, seqs, SNAPFILE_LIST_MAX);
	char path[SNAPFILE_PATH_MAX];
	for (int i = SNAPFILE_KEEP; i < n; i++) {
		snapfile_name(path, sizeof(path), data_dir, seqs[i], "");
		unlink(path);
	}
}

int snapfile_write(const char *data_dir, uint64_t seq, const uint8_t chain[LOGFILE_HASH_BYTES],
                   const char *body, size_t body_len)
{
	char dir[SNAPFILE_PATH_MAX], tmp[SNAPFILE_PATH_MAX], path[SNAPFILE_PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/" SNAPFILE_DIR, data_dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	unsigned char hdr[SNAPFILE_HEADER_BYTES];
	memcpy(hdr, SNAPFILE_MAGIC, 6);
	hdr[6] = 0;
	hdr[7] = SNAPFILE_VERSION;
	put_be64(hdr + 8, seq);
	memcpy(hdr + 16, chain, LOGFILE_HASH_BYTES);
	put_be64(hdr + 48, body_len);
	snapfile_checksum(hdr, body, body_len, hdr + SNAPFILE_CHECKSUMMED_BYTES);
	snapfile_name(tmp, sizeof(tmp), data_dir, seq, ".tmp");
	snapfile_name(path, sizeof(path), data_dir, seq, "");
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int rc = fileio_write_all(fd, hdr, sizeof(hdr));
	if (rc == 0)
		rc = fileio_write_synced(fd, body, body_len);
	close(fd);
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc == 0)
		rc = fileio_fsync_dir(dir);
	if (rc < 0) {
		unlink(tmp);
		return rc;
	}
	snapfile_prune(data_dir);
	return 0;
}

int snapfile_remove(const char *data_dir, uint64_t seq)
{
	char path[SNAPFILE_PATH_MAX];
	snapfile_name(path, sizeof(path), data_dir, seq, "");
	return unlink(path) < 0 ? -errno : 0;
}

static int cmp_desc(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

/* Parses "<20 digits>.snap"; false for anything else (temporaries too). */
static bool snapfile_parse_name(const char *name, uint64_t *seq)
{
	if (strlen(name) != 25 || strcmp(name + 20, ".snap") != 0)
		return false;
	uint64_t v = 0;
	for (int i = 0; i < 20; i++) {
		if (name[i] < '0' || name[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(name[i] - '0');
	}
	*seq = v;
	return true;
}

/* Adds seq to the n in all[] if there is room or it is newer than the
 * oldest of them, which it then replaces. */
static void snapfile_keep_newest(uint64_t *all, size_t *n, size_t cap, uint64_t seq)
{
	if (*n < cap) {
		all[(*n)++] = seq;
		return;
	}
	size_t oldest = 0;
	for (size_t i = 1; i < cap; i++)
		if (all[i] < all[oldest])
			oldest = i;
	if (seq > all[oldest])
		all[oldest] = seq;
}

int snapfile_list(const char *data_dir, uint64_t *seqs, size_t max)
{
	char dir[SNAPFILE_PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/" SNAPFILE_DIR, data_dir);
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	uint64_t all[SNAPFILE_LIST_MAX];
	size_t n = 0;
	uint64_t seq;
	struct dirent *e;
	while ((e = readdir(d)))
		if (snapfile_parse_name(e->d_name, &seq))
			snapfile_keep_newest(all, &n, SNAPFILE_LIST_MAX, seq);
	closedir(d);
	qsort(all, n, sizeof(all[0]), cmp_desc);
	if (n > max)
		n = max;
	memcpy(seqs, all, n * sizeof(all[0]));
	return (int)n;
}

static int read_all(int fd, void *p, size_t n)
{
	char *c = p;
	while (n) {
		ssize_t r = read(fd, c, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EBADMSG;
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Checks the header of a snapshot file of size file_bytes. */
static int snapfile_check_header(const unsigned char *hdr, uint64_t seq, uint64_t file_bytes)
{
	if (memcmp(hdr, SNAPFILE_MAGIC, 6) != 0)
		return -EBADMSG;
	if (hdr[6] != 0 || hdr[7] != SNAPFILE_VERSION)
		return -EPROTONOSUPPORT;
	uint64_t body_len = get_be64(hdr + 48);
	if (get_be64(hdr + 8) != seq || body_len > SNAPFILE_BODY_MAX ||
	    file_bytes != SNAPFILE_HEADER_BYTES + body_len)
		return -EBADMSG;
	return 0;
}

static int snapfile_read_fd(int fd, uint64_t seq, snapfile_t *out)
{
	struct stat st;
	unsigned char hdr[SNAPFILE_HEADER_BYTES];
	if (fstat(fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size < SNAPFILE_HEADER_BYTES)
		return -EBADMSG;
	int rc = read_all(fd, hdr, sizeof(hdr));
	if (rc == 0)
		rc = snapfile_check_header(hdr, seq, (uint64_t)st.st_size);
	if (rc < 0)
		return rc;
	size_t n = (size_t)get_be64(hdr + 48);
	char *body = malloc(n ? n : 1);
	if (!body)
		return -ENOMEM;
	rc = read_all(fd, body, n);
	unsigned char sum[32];
	if (rc == 0) {
		snapfile_checksum(hdr, body, n, sum);
		if (sodium_memcmp(sum, hdr + SNAPFILE_CHECKSUMMED_BYTES, 32) != 0)
			rc = -EBADMSG;
	}
	if (rc < 0) {
		free(body);
		return rc;
	}
	out->seq = seq;
	memcpy(out->chain, hdr + 16, LOGFILE_HASH_BYTES);
	out->body = body;
	out->body_len = n;
	return 0;
}

int snapfile_read(const char *data_dir, uint64_t seq, snapfile_t *out)
{
	char path[SNAPFILE_PATH_MAX];
	snapfile_name(path, sizeof(path), data_dir, seq, "");
	memset(out, 0, sizeof(*out));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = snapfile_read_fd(fd, seq, out);
	close(fd);
	return rc;
}

void snapfile_free(snapfile_t *s)
{
	free(s->body);
	s->body = NULL;
	s->body_len = 0;
}

int snapfile_to_ledger(const snapfile_t *s, ledger_t **out)
{
	ledger_t *l = ledger_new();
	int rc = l ? snapfile_into_ledger(s, l) : -ENOMEM;
	if (rc == 0)
		*out = l;
	else if (l)
		ledger_free(l);
	return rc;
}

int snapfile_into_ledger(const snapfile_t *s, ledger_t *l)
{
	int rc = ledger_unpack(l, s->body, s->body_len);
	if (rc == 0 && ledger_last_seq(l) != s->seq)
		rc = -EINVAL;
	return rc;
}
