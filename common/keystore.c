/*
 * keystore.c - the key store DATA/keys (see keystore.h for who writes it).
 *
 * Format: a 64-byte header, then fixed-size 64-byte slots, so that a key is
 * destroyed by overwriting its own slot in place (no copy of it is left in
 * a rewritten file) and fdatasyncing.
 *
 *   header  offset 0   8 bytes  magic "ESBKEYS\0"
 *                  8   u32 BE   version (1)
 *                  12  u32 BE   slot size (64)
 *                  16  32 bytes the server secret: the key of the keyed
 *                               email hash (BLAKE2b-256) that the log and
 *                               the state hold instead of the email
 *                  48  16 bytes BLAKE2b-128 of bytes 0..47
 *   slot i  offset 64 + 64 i
 *                  0   u64 BE   account number (0: an empty or destroyed slot)
 *                  8   8 bytes  zero (reserved)
 *                  16  32 bytes the account's data key (XChaCha20-Poly1305)
 *                  48  16 bytes BLAKE2b-128 of bytes 0..47
 *
 * Validity: a header with another magic, version, slot size or checksum
 * makes the whole file invalid (-EINVAL: the tools say so and stop; nothing
 * rewrites it). A slot of zeros is empty (a destroyed key, or one reserved
 * and never written). A slot whose checksum fails is a torn write: its key
 * was written by a resolver that died before the fdatasync ended, so the
 * event that needed it was never sent on (the key is written and synced
 * before the account_opened event leaves the resolver): it is counted in
 * bad_slots and ignored. A partial slot at the end is ignored likewise and
 * overwritten by the next key. When two valid slots name one account the
 * later one counts (a key of an event never logged, then the number drawn
 * again: the later draw is the one logged).
 *
 * The file is created with a fresh random secret under a temporary name,
 * fsync'd, renamed to DATA/keys and the directory fsync'd: a crash leaves
 * either no store or a whole one. Mode 0600.
 */
#include "keystore.h"

#include "bigmem.h"
#include "fileio.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEYSTORE_MAGIC "ESBKEYS"
#define KEYSTORE_VERSION 1
#define KEYSTORE_CHECK_BYTES 16
#define KEYSTORE_BODY_BYTES (KEYSTORE_SLOT_BYTES - KEYSTORE_CHECK_BYTES)
#define KEYSTORE_INDEX_CAP_MIN 64u
#define KEYSTORE_SCAN_SLOTS 256 /* slots read at once (16 KiB) */

static void keystore_put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t keystore_get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* Fills the last 16 bytes of a 64-byte record with the checksum of the rest. */
static void keystore_seal(uint8_t rec[KEYSTORE_SLOT_BYTES])
{
	crypto_generichash(rec + KEYSTORE_BODY_BYTES, KEYSTORE_CHECK_BYTES, rec,
	                   KEYSTORE_BODY_BYTES, NULL, 0);
}

static bool keystore_sealed(const uint8_t rec[KEYSTORE_SLOT_BYTES])
{
	uint8_t check[KEYSTORE_CHECK_BYTES];
	crypto_generichash(check, sizeof(check), rec, KEYSTORE_BODY_BYTES, NULL, 0);
	return sodium_memcmp(check, rec + KEYSTORE_BODY_BYTES, sizeof(check)) == 0;
}

/* ---- the index: account -> slot ---- */

static uint32_t keystore_home(const keystore_t *ks, uint64_t account)
{
	uint64_t x = account * 0x9e3779b97f4a7c15ULL;
	return (uint32_t)(x >> 32) & ks->index_mask;
}

static keystore_entry_t *keystore_probe(const keystore_t *ks, uint64_t account)
{
	uint32_t i = keystore_home(ks, account);
	while (ks->index[i].account && ks->index[i].account != account)
		i = (i + 1) & ks->index_mask;
	return &ks->index[i];
}

static int keystore_index_grow(keystore_t *ks)
{
	uint32_t cap = ks->index ? (ks->index_mask + 1) * 2 : KEYSTORE_INDEX_CAP_MIN;
	keystore_entry_t *old = ks->index;
	uint32_t old_cap = old ? ks->index_mask + 1 : 0;
	ks->index = bigmem_zalloc((size_t)cap * sizeof(*ks->index));
	if (!ks->index) {
		ks->index = old;
		return -ENOMEM;
	}
	ks->index_mask = cap - 1;
	for (uint32_t i = 0; i < old_cap; i++)
		if (old[i].account)
			*keystore_probe(ks, old[i].account) = old[i];
	bigmem_free(old, (size_t)old_cap * sizeof(*old));
	return 0;
}

/* Room for n entries at most half full, so that a scan of n slots never
 * rehashes (growing one doubling at a time cost 8% of a 1,000,000-account
 * start). */
static int keystore_index_reserve(keystore_t *ks, uint32_t n)
{
	while (!ks->index || 2 * ((uint64_t)n + 1) > (uint64_t)ks->index_mask + 1) {
		int rc = keystore_index_grow(ks);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int keystore_index_add(keystore_t *ks, uint64_t account, uint32_t slot)
{
	assert(account != 0);
	if (!ks->index || 2 * (ks->index_used + 1) > ks->index_mask + 1) {
		int rc = keystore_index_grow(ks);
		if (rc < 0)
			return rc;
	}
	keystore_entry_t *e = keystore_probe(ks, account);
	if (!e->account)
		ks->index_used++;
	else if (e->slot != slot)
		ks->dup_slots++;
	e->account = account;
	e->slot = slot;
	return 0;
}

/* Backward-shift deletion, so that lookups need no tombstones. */
static void keystore_index_delete(keystore_t *ks, keystore_entry_t *e)
{
	uint32_t hole = (uint32_t)(e - ks->index);
	uint32_t i = hole;
	for (;;) {
		i = (i + 1) & ks->index_mask;
		if (!ks->index[i].account)
			break;
		uint32_t home = keystore_home(ks, ks->index[i].account);
		if (((i - home) & ks->index_mask) >= ((i - hole) & ks->index_mask)) {
			ks->index[hole] = ks->index[i];
			hole = i;
		}
	}
	ks->index[hole] = (keystore_entry_t){ 0 };
	ks->index_used--;
}

/* ---- the file ---- */

/* A new store with secret (NULL: a random one) replaces path atomically. */
static int keystore_create(const char *data_dir, const char *path, const uint8_t *secret)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	uint8_t h[KEYSTORE_HEADER_BYTES] = { 0 };
	memcpy(h, KEYSTORE_MAGIC, sizeof(KEYSTORE_MAGIC));
	h[11] = KEYSTORE_VERSION;
	h[15] = KEYSTORE_SLOT_BYTES;
	if (secret)
		memcpy(h + 16, secret, KEYSTORE_SECRET_BYTES);
	else
		randombytes_buf(h + 16, KEYSTORE_SECRET_BYTES);
	keystore_seal(h);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int rc = fileio_write_synced(fd, h, sizeof(h));
	sodium_memzero(h, sizeof(h));
	close(fd);
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc == 0)
		rc = fileio_fsync_dir(data_dir);
	if (rc < 0)
		unlink(tmp);
	return rc;
}

static int keystore_read_header(keystore_t *ks)
{
	uint8_t h[KEYSTORE_HEADER_BYTES];
	ssize_t n = pread(ks->fd, h, sizeof(h), 0);
	if (n < 0)
		return -errno;
	if (n != (ssize_t)sizeof(h) || memcmp(h, KEYSTORE_MAGIC, sizeof(KEYSTORE_MAGIC)) != 0 ||
	    !keystore_sealed(h) || keystore_get_u64(h + 8) !=
	    ((uint64_t)KEYSTORE_VERSION << 32 | KEYSTORE_SLOT_BYTES))
		return -EINVAL;
	memcpy(ks->secret, h + 16, KEYSTORE_SECRET_BYTES);
	sodium_memzero(h, sizeof(h));
	return 0;
}

/* The whole slots in the file. */
static int keystore_file_slots(const keystore_t *ks, uint32_t *n)
{
	struct stat st;
	if (fstat(ks->fd, &st) < 0)
		return -errno;
	uint64_t slots = st.st_size < KEYSTORE_HEADER_BYTES ? 0 :
	                 ((uint64_t)st.st_size - KEYSTORE_HEADER_BYTES) / KEYSTORE_SLOT_BYTES;
	if (slots > KEYSTORE_SLOTS_MAX)
		return -EFBIG;
	*n = (uint32_t)slots;
	return 0;
}

/* Indexes slot i (rec): 0 or -ENOMEM. A zero slot may be the first hole. */
static int keystore_scan_slot(keystore_t *ks, const uint8_t *rec, uint32_t i, uint32_t n,
                              uint32_t *hole)
{
	static const uint8_t zero[KEYSTORE_SLOT_BYTES];
	if (memcmp(rec, zero, KEYSTORE_SLOT_BYTES) == 0) {
		if (*hole == n && n - i <= KEYSTORE_HOLE_SLOTS_MAX)
			*hole = i; /* may be a slot reserved and not yet written */
		return 0;
	}
	uint64_t account = keystore_get_u64(rec);
	if (!keystore_sealed(rec) || account == 0) {
		ks->bad_slots++;
		return 0;
	}
	return keystore_index_add(ks, account, i);
}

/* Indexes every valid slot from `from` to the end (see the top of this
 * file), KEYSTORE_SCAN_SLOTS slots per read. */
static int keystore_scan_from(keystore_t *ks, uint32_t from)
{
	uint32_t n = 0;
	int rc = keystore_file_slots(ks, &n);
	if (rc < 0)
		return rc;
	if (n > ks->slots_n)
		ks->slots_n = n;
	rc = keystore_index_reserve(ks, n);
	if (rc < 0)
		return rc;
	uint32_t hole = n;
	uint8_t buf[KEYSTORE_SCAN_SLOTS * KEYSTORE_SLOT_BYTES];
	for (uint32_t i = from; i < n && rc == 0;) {
		uint32_t k = n - i < KEYSTORE_SCAN_SLOTS ? n - i : KEYSTORE_SCAN_SLOTS;
		size_t len = (size_t)k * KEYSTORE_SLOT_BYTES;
		off_t off = KEYSTORE_HEADER_BYTES + (off_t)i * KEYSTORE_SLOT_BYTES;
		if (pread(ks->fd, buf, len, off) != (ssize_t)len)
			rc = -EIO;
		for (uint32_t x = 0; x < k && rc == 0; x++, i++)
			rc = keystore_scan_slot(ks, buf + (size_t)x * KEYSTORE_SLOT_BYTES, i, n, &hole);
	}
	sodium_memzero(buf, sizeof(buf));
	if (rc == 0)
		ks->scan_from = hole;
	return rc;
}

static int keystore_scan(keystore_t *ks)
{
	return keystore_scan_from(ks, 0);
}

int keystore_rescan(keystore_t *ks)
{
	return ks->fd < 0 ? -EBADF : keystore_scan_from(ks, 0);
}

int keystore_catch_up(keystore_t *ks)
{
	if (ks->fd < 0)
		return -EBADF;
	uint32_t n = 0;
	int rc = keystore_file_slots(ks, &n);
	if (rc < 0)
		return rc;
	/* a writer's own slots are below slots_n, and another process appends
	 * whole slots at the end (one at a time, synced): no hole to read again */
	uint32_t from = ks->writable ? ks->slots_n : ks->scan_from;
	return n <= from ? 0 : keystore_scan_from(ks, from);
}

int keystore_open(keystore_t *ks, const char *data_dir, bool writable)
{
	assert(ks && data_dir);
	memset(ks, 0, sizeof(*ks));
	ks->fd = -1;
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/%s", data_dir, KEYSTORE_FILE) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	if (writable && access(path, F_OK) < 0 && errno == ENOENT) {
		int rc = keystore_create(data_dir, path, NULL);
		if (rc < 0)
			return rc;
	}
	ks->fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (ks->fd < 0)
		return -errno;
	ks->writable = writable;
	int rc = keystore_read_header(ks);
	if (rc == 0)
		rc = keystore_scan(ks);
	if (rc < 0)
		keystore_close(ks);
	return rc;
}

int keystore_refresh(keystore_t *ks)
{
	assert(!ks->writable);
	if (ks->fd < 0)
		return -EBADF;
	/* all of it again: a slot torn when last read may be whole now */
	if (ks->index)
		memset(ks->index, 0, ((size_t)ks->index_mask + 1) * sizeof(*ks->index));
	ks->index_used = ks->slots_n = ks->bad_slots = ks->dup_slots = 0;
	return keystore_scan(ks);
}

int keystore_adopt_secret(const char *data_dir, const uint8_t secret[KEYSTORE_SECRET_BYTES])
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/%s", data_dir, KEYSTORE_FILE) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	keystore_t ks;
	int rc = keystore_open(&ks, data_dir, false);
	if (rc == -ENOENT)
		return keystore_create(data_dir, path, secret);
	if (rc < 0)
		return rc;
	bool same = sodium_memcmp(ks.secret, secret, KEYSTORE_SECRET_BYTES) == 0;
	bool empty = ks.index_used == 0;
	keystore_close(&ks);
	if (same)
		return 0;
	return empty ? keystore_create(data_dir, path, secret) : -EEXIST;
}

void keystore_close(keystore_t *ks)
{
	if (ks->fd >= 0)
		close(ks->fd);
	ks->fd = -1;
	if (ks->index)
		bigmem_free(ks->index, ((size_t)ks->index_mask + 1) * sizeof(*ks->index));
	ks->index = NULL;
	ks->index_mask = ks->index_used = 0;
	sodium_memzero(ks->secret, sizeof(ks->secret));
}

uint32_t keystore_reserve(keystore_t *ks)
{
	assert(ks->writable);
	if (keystore_catch_up(ks) < 0)
		return UINT32_MAX; /* slots another process appended would be overwritten */
	if (ks->slots_n >= KEYSTORE_SLOTS_MAX)
		return UINT32_MAX;
	return ks->slots_n++;
}

static int keystore_pwrite_slot(int fd, uint32_t slot, const uint8_t rec[KEYSTORE_SLOT_BYTES])
{
	off_t off = KEYSTORE_HEADER_BYTES + (off_t)slot * KEYSTORE_SLOT_BYTES;
	ssize_t n;
	do
		n = pwrite(fd, rec, KEYSTORE_SLOT_BYTES, off);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n != KEYSTORE_SLOT_BYTES)
		return -EIO;
	return fdatasync(fd) < 0 ? -errno : 0;
}

int keystore_write_slot(int fd, uint32_t slot, uint64_t account,
                        const uint8_t key[KEYSTORE_KEY_BYTES])
{
	assert(account != 0 && slot < KEYSTORE_SLOTS_MAX);
	uint8_t rec[KEYSTORE_SLOT_BYTES] = { 0 };
	keystore_put_u64(rec, account);
	memcpy(rec + 16, key, KEYSTORE_KEY_BYTES);
	keystore_seal(rec);
	int rc = keystore_pwrite_slot(fd, slot, rec);
	sodium_memzero(rec, sizeof(rec));
	return rc;
}

int keystore_put(keystore_t *ks, uint64_t account, const uint8_t key[KEYSTORE_KEY_BYTES])
{
	uint32_t slot = keystore_reserve(ks);
	if (slot == UINT32_MAX)
		return -ENOSPC;
	int rc = keystore_write_slot(ks->fd, slot, account, key);
	return rc < 0 ? rc : keystore_index_add(ks, account, slot);
}

int keystore_get(const keystore_t *ks, uint64_t account, uint8_t key[KEYSTORE_KEY_BYTES])
{
	if (!ks->index || account == 0)
		return -ENOENT;
	const keystore_entry_t *e = keystore_probe(ks, account);
	if (!e->account)
		return -ENOENT;
	uint8_t rec[KEYSTORE_SLOT_BYTES];
	off_t off = KEYSTORE_HEADER_BYTES + (off_t)e->slot * KEYSTORE_SLOT_BYTES;
	ssize_t n = pread(ks->fd, rec, sizeof(rec), off);
	int rc = n < 0 ? -errno : 0;
	if (rc == 0 && (n != (ssize_t)sizeof(rec) || !keystore_sealed(rec) ||
	                keystore_get_u64(rec) != account))
		rc = -ENOENT; /* destroyed under a reader that opened the file before */
	if (rc == 0)
		memcpy(key, rec + 16, KEYSTORE_KEY_BYTES);
	sodium_memzero(rec, sizeof(rec));
	return rc;
}

/* Zeros every other slot of account (older keys of a number drawn twice). */
static int keystore_destroy_older(keystore_t *ks, uint64_t account)
{
	uint8_t rec[KEYSTORE_SLOT_BYTES], zero[KEYSTORE_SLOT_BYTES] = { 0 };
	int rc = 0;
	for (uint32_t i = 0; i < ks->slots_n && rc == 0; i++) {
		off_t off = KEYSTORE_HEADER_BYTES + (off_t)i * KEYSTORE_SLOT_BYTES;
		if (pread(ks->fd, rec, sizeof(rec), off) == (ssize_t)sizeof(rec) &&
		    keystore_get_u64(rec) == account)
			rc = keystore_pwrite_slot(ks->fd, i, zero);
	}
	sodium_memzero(rec, sizeof(rec));
	return rc;
}

int keystore_destroy(keystore_t *ks, uint64_t account)
{
	assert(ks->writable);
	if (!ks->index || account == 0)
		return -ENOENT;
	keystore_entry_t *e = keystore_probe(ks, account);
	if (!e->account)
		return -ENOENT;
	uint8_t zero[KEYSTORE_SLOT_BYTES] = { 0 };
	int rc = keystore_pwrite_slot(ks->fd, e->slot, zero);
	if (rc == 0)
		keystore_index_delete(ks, e);
	if (rc == 0 && ks->dup_slots)
		rc = keystore_destroy_older(ks, account);
	return rc;
}

void keystore_email_hash(const keystore_t *ks, const char *email, size_t n,
                         uint8_t out[KEYSTORE_HASH_BYTES])
{
	crypto_generichash(out, KEYSTORE_HASH_BYTES, (const unsigned char *)email, n, ks->secret,
	                   KEYSTORE_SECRET_BYTES);
}
