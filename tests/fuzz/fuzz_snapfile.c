/*
 * fuzz_snapfile.c - the snapshot reader (common/snapfile.c): snapfile_list()
 * and snapfile_read() of DATA/snapshots/<seq>.snap, then
 * snapfile_to_ledger() (ledger_unpack of the body) for a snapshot that
 * passed its checks.
 *
 * Input: byte 0 holds flags. Bit 0 clear: the rest is the file as it is
 * (named after the seq in its header, when it has one). Bit 0 set: the rest
 * is a body, wrapped in a correct header and checksum (so that the fuzzer
 * reaches ledger_unpack). Checks: a snapshot is accepted only when its
 * checksum is right; an accepted one has the header's seq; nothing leaks.
 */
#include "fuzz.h"

#include "snapfile.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FUZZ_SNAP_HEADER_BYTES 88

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

static unsigned char *fuzz_wrap(const uint8_t *body, size_t n, uint64_t seq)
{
	unsigned char *out = malloc(FUZZ_SNAP_HEADER_BYTES + n);
	assert(out);
	memset(out, 0, FUZZ_SNAP_HEADER_BYTES);
	memcpy(out, "ESBSNP\0\1", 8);
	put_be64(out + 8, seq);
	memset(out + 16, 0xab, 32);
	put_be64(out + 48, n);
	memcpy(out + FUZZ_SNAP_HEADER_BYTES, body, n);
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, out, 56);
	crypto_generichash_update(&st, body, n);
	crypto_generichash_final(&st, out + 56, 32);
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > FUZZ_INPUT_BYTES_MAX)
		return 0;
	static char snapdir[256];
	const char *dir = fuzz_tmpdir();
	snprintf(snapdir, sizeof(snapdir), "%s/%s", dir, SNAPFILE_DIR);
	mkdir(snapdir, 0700);
	const uint8_t *in = data + 1;
	size_t n = size - 1;
	unsigned char *file = NULL;
	size_t file_len = n;
	uint64_t seq = 7;
	if (data[0] & 1) {
		file = fuzz_wrap(in, n, seq);
		file_len = FUZZ_SNAP_HEADER_BYTES + n;
	} else {
		file = malloc(n ? n : 1);
		assert(file);
		memcpy(file, in, n);
		if (n >= 16)
			seq = get_be64(file + 8);
	}
	char path[512];
	snprintf(path, sizeof(path), "%s/%020" PRIu64 ".snap", snapdir, seq);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert(fd >= 0);
	assert(file_len == 0 || write(fd, file, file_len) == (ssize_t)file_len);
	close(fd);

	uint64_t seqs[SNAPFILE_LIST_MAX];
	int k = snapfile_list(dir, seqs, SNAPFILE_LIST_MAX);
	assert(k == 1 && seqs[0] == seq);
	snapfile_t s;
	int rc = snapfile_read(dir, seq, &s);
	if (rc == 0) {
		assert(s.seq == seq);
		assert(file_len >= FUZZ_SNAP_HEADER_BYTES &&
		       s.body_len == file_len - FUZZ_SNAP_HEADER_BYTES);
		ledger_t *l = NULL;
		if (snapfile_to_ledger(&s, &l) == 0) {
			assert(l);
			ledger_free(l);
		}
		snapfile_free(&s);
	} else {
		assert(rc == -EBADMSG || rc == -EPROTONOSUPPORT || rc == -ENOMEM);
	}
	unlink(path);
	free(file);
	return 0;
}
