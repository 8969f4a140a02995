/*
 * test_keystore.c - the key store DATA/keys (common/keystore.c) and sealed
 * personal data (common/pii.c): keys kept across reopening, destroyed for
 * good (the slot's bytes are zeros on disk), torn slots ignored, a damaged
 * header refused, and a sealed email bound to its key, account and seq.
 */
#include "keystore.h"
#include "ledger.h"
#include "pii.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ACCT_A 1234567890123456ULL
#define ACCT_B 6543210987654321ULL

static char dir[64];
static char path[96];

static void t_setup(void)
{
	cr_assert_geq(sodium_init(), 0);
	snprintf(dir, sizeof(dir), "/tmp/test_keystore.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, KEYSTORE_FILE);
}

static void t_teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

/* The whole file, for looking at its bytes. */
static size_t t_read_file(uint8_t *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0);
	ssize_t n = read(fd, buf, cap);
	close(fd);
	cr_assert_geq(n, 0);
	return (size_t)n;
}

static bool t_contains(const uint8_t *hay, size_t n, const uint8_t *needle, size_t k)
{
	for (size_t i = 0; i + k <= n; i++)
		if (memcmp(hay + i, needle, k) == 0)
			return true;
	return false;
}

TestSuite(keystore, .init = t_setup, .fini = t_teardown);

Test(keystore, created_kept_and_reopened)
{
	keystore_t ks;
	uint8_t ka[KEYSTORE_KEY_BYTES], kb[KEYSTORE_KEY_BYTES], out[KEYSTORE_KEY_BYTES];
	cr_assert_eq(keystore_open(&ks, dir, false), -ENOENT); /* a reader creates nothing */
	cr_assert_eq(keystore_open(&ks, dir, true), 0);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600);
	pii_new_key(ka);
	pii_new_key(kb);
	cr_assert_eq(keystore_put(&ks, ACCT_A, ka), 0);
	cr_assert_eq(keystore_put(&ks, ACCT_B, kb), 0);
	uint8_t h1[KEYSTORE_HASH_BYTES], h2[KEYSTORE_HASH_BYTES];
	keystore_email_hash(&ks, "a@b.c", 5, h1);
	keystore_close(&ks);

	cr_assert_eq(keystore_open(&ks, dir, false), 0);
	cr_assert_eq(keystore_get(&ks, ACCT_A, out), 0);
	cr_assert_arr_eq(out, ka, sizeof(ka));
	cr_assert_eq(keystore_get(&ks, ACCT_B, out), 0);
	cr_assert_arr_eq(out, kb, sizeof(kb));
	cr_assert_eq(keystore_get(&ks, 1111111111111111ULL, out), -ENOENT);
	keystore_email_hash(&ks, "a@b.c", 5, h2);
	cr_assert_arr_eq(h1, h2, sizeof(h1), "the secret is kept: the same hash after reopening");
	keystore_close(&ks);
}

Test(keystore, destroyed_for_good)
{
	keystore_t ks, reader;
	uint8_t ka[KEYSTORE_KEY_BYTES], kb[KEYSTORE_KEY_BYTES], out[KEYSTORE_KEY_BYTES];
	cr_assert_eq(keystore_open(&ks, dir, true), 0);
	pii_new_key(ka);
	pii_new_key(kb);
	cr_assert_eq(keystore_put(&ks, ACCT_A, ka), 0);
	cr_assert_eq(keystore_put(&ks, ACCT_B, kb), 0);
	cr_assert_eq(keystore_open(&reader, dir, false), 0);
	cr_assert_eq(keystore_destroy(&ks, ACCT_A), 0);
	cr_assert_eq(keystore_destroy(&ks, ACCT_A), -ENOENT);
	cr_assert_eq(keystore_get(&ks, ACCT_A, out), -ENOENT);
	cr_assert_eq(keystore_get(&reader, ACCT_A, out), -ENOENT,
	             "a reader opened before sees the slot gone");
	cr_assert_eq(keystore_get(&ks, ACCT_B, out), 0);
	cr_assert_arr_eq(out, kb, sizeof(kb));
	static uint8_t file[4096];
	size_t n = t_read_file(file, sizeof(file));
	cr_assert_not(t_contains(file, n, ka, sizeof(ka)), "the destroyed key is not in the file");
	cr_assert(t_contains(file, n, kb, sizeof(kb)));
	keystore_close(&reader);
	keystore_close(&ks);
	cr_assert_eq(keystore_open(&ks, dir, true), 0);
	cr_assert_eq(keystore_get(&ks, ACCT_A, out), -ENOENT, "and stays gone after reopening");
	keystore_close(&ks);
}

Test(keystore, reader_refresh_sees_new_keys)
{
	keystore_t ks, reader;
	uint8_t k[KEYSTORE_KEY_BYTES], out[KEYSTORE_KEY_BYTES];
	cr_assert_eq(keystore_open(&ks, dir, true), 0);
	cr_assert_eq(keystore_open(&reader, dir, false), 0);
	pii_new_key(k);
	cr_assert_eq(keystore_put(&ks, ACCT_A, k), 0);
	cr_assert_eq(keystore_get(&reader, ACCT_A, out), -ENOENT);
	cr_assert_eq(keystore_refresh(&reader), 0);
	cr_assert_eq(keystore_get(&reader, ACCT_A, out), 0);
	cr_assert_arr_eq(out, k, sizeof(k));
	keystore_close(&reader);
	keystore_close(&ks);
}

Test(keystore, torn_slot_ignored_and_overwritten)
{
	keystore_t ks;
	uint8_t k[KEYSTORE_KEY_BYTES], out[KEYSTORE_KEY_BYTES];
	cr_assert_eq(keystore_open(&ks, dir, true), 0);
	pii_new_key(k);
	cr_assert_eq(keystore_put(&ks, ACCT_A, k), 0);
	keystore_close(&ks);
	/* a second slot cut short, and one whose bytes are damaged */
	int fd = open(path, O_WRONLY | O_APPEND);
	uint8_t junk[KEYSTORE_SLOT_BYTES + 20];
	memset(junk, 0x5a, sizeof(junk));
	cr_assert_eq(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	close(fd);
	cr_assert_eq(keystore_open(&ks, dir, true), 0);
	cr_assert_eq(ks.bad_slots, 1);
	cr_assert_eq(keystore_get(&ks, ACCT_A, out), 0);
	cr_assert_eq(keystore_put(&ks, ACCT_B, k), 0);
	keystore_close(&ks);
	cr_assert_eq(keystore_open(&ks, dir, false), 0);
	cr_assert_eq(keystore_get(&ks, ACCT_B, out), 0, "the partial slot was overwritten");
	keystore_close(&ks);
}

Test(keystore, damaged_header_refused)
{
	keystore_t ks;
	cr_assert_eq(keystore_open(&ks, dir, true), 0);
	keystore_close(&ks);
	int fd = open(path, O_WRONLY);
	cr_assert_eq(pwrite(fd, "X", 1, 20), 1); /* inside the secret */
	close(fd);
	cr_assert_eq(keystore_open(&ks, dir, false), -EINVAL);
	cr_assert_eq(keystore_open(&ks, dir, true), -EINVAL, "never rewritten");
}

Test(keystore, sealed_email_bound_to_key_account_and_seq)
{
	uint8_t k[KEYSTORE_KEY_BYTES], other[KEYSTORE_KEY_BYTES], sealed[PII_SEALED_BYTES_MAX];
	char out[LEDGER_EMAIL_BYTES_MAX + 1];
	const char *email = "alice@example.com";
	pii_new_key(k);
	pii_new_key(other);
	size_t n = pii_seal(k, ACCT_A, 7, email, strlen(email), sealed);
	cr_assert_eq(n, PII_NONCE_BYTES + strlen(email) + PII_TAG_BYTES);
	cr_assert_not(t_contains(sealed, n, (const uint8_t *)email, strlen(email)));
	cr_assert_eq(pii_open(k, ACCT_A, 7, sealed, n, out), 0);
	cr_assert_str_eq(out, email);
	cr_assert_eq(pii_open(other, ACCT_A, 7, sealed, n, out), -EBADMSG);
	cr_assert_eq(pii_open(k, ACCT_B, 7, sealed, n, out), -EBADMSG);
	cr_assert_eq(pii_open(k, ACCT_A, 8, sealed, n, out), -EBADMSG);
	sealed[n - 1] ^= 1;
	cr_assert_eq(pii_open(k, ACCT_A, 7, sealed, n, out), -EBADMSG);
	cr_assert_eq(pii_open(k, ACCT_A, 7, sealed, 10, out), -EBADMSG);
}

Test(keystore, event_email_plain_sealed_and_erased)
{
	keystore_t ks;
	uint8_t k[KEYSTORE_KEY_BYTES];
	char out[LEDGER_EMAIL_BYTES_MAX + 1];
	cr_assert_eq(keystore_open(&ks, dir, true), 0);
	pii_new_key(k);
	cr_assert_eq(keystore_put(&ks, ACCT_A, k), 0);
	ledger_event_t ev = { .seq = 3, .type = LEDGER_EV_ACCOUNT_OPENED, .account = ACCT_A };
	snprintf(ev.email, sizeof(ev.email), "old@plain.example");
	cr_assert_eq(pii_event_email(NULL, &ev, out), 0, "an old plain event needs no key");
	cr_assert_str_eq(out, "old@plain.example");
	memset(ev.email, 0, sizeof(ev.email));
	ev.has_email_hash = true;
	ev.email_enc_len = pii_seal(k, ACCT_A, 3, "new@sealed.example", 18, ev.email_enc);
	cr_assert_eq(pii_event_email(&ks, &ev, out), 0);
	cr_assert_str_eq(out, "new@sealed.example");
	cr_assert_eq(pii_event_email(NULL, &ev, out), -ENOENT);
	cr_assert_eq(keystore_destroy(&ks, ACCT_A), 0);
	cr_assert_eq(pii_event_email(&ks, &ev, out), -ENOENT);
	keystore_close(&ks);
}

/* A standby: the replicator appends, the resolver's writable store catches
 * up with those slots, a hole left by a reservation is read once written,
 * and the writer's next reservation comes after every slot appended. */
Test(keystore, catch_up_sees_slots_another_process_appended)
{
	keystore_t w, other, reader;
	uint8_t k1[KEYSTORE_KEY_BYTES], k2[KEYSTORE_KEY_BYTES], got[KEYSTORE_KEY_BYTES];
	randombytes_buf(k1, sizeof(k1));
	randombytes_buf(k2, sizeof(k2));
	cr_assert_eq(keystore_open(&w, dir, true), 0);
	cr_assert_eq(keystore_open(&other, dir, true), 0);
	cr_assert_eq(keystore_open(&reader, dir, false), 0);
	uint32_t hole = keystore_reserve(&other); /* reserved, written later */
	cr_assert_eq(keystore_put(&other, ACCT_A, k1), 0);
	cr_assert_eq(keystore_get(&w, ACCT_A, got), -ENOENT);
	cr_assert_eq(keystore_catch_up(&w), 0);
	cr_assert_eq(keystore_catch_up(&reader), 0);
	cr_assert_eq(keystore_get(&w, ACCT_A, got), 0);
	cr_assert_arr_eq(got, k1, sizeof(k1));
	cr_assert_eq(keystore_write_slot(other.fd, hole, ACCT_B, k2), 0);
	cr_assert_eq(keystore_catch_up(&reader), 0);
	cr_assert_eq(keystore_get(&reader, ACCT_B, got), 0);
	cr_assert_arr_eq(got, k2, sizeof(k2));
	cr_assert_eq(keystore_reserve(&w), 2, "a new slot after the two appended");
	cr_assert_eq(keystore_destroy(&w, ACCT_A), 0);
	keystore_close(&w);
	keystore_close(&other);
	keystore_close(&reader);
}

/* --rejoin: a missing store takes the secret; one with another secret and
 * no key is replaced; one holding keys under another secret is refused and
 * left as it was. */
Test(keystore, adopt_secret_creates_replaces_or_refuses)
{
	uint8_t s1[KEYSTORE_SECRET_BYTES], s2[KEYSTORE_SECRET_BYTES], key[KEYSTORE_KEY_BYTES];
	randombytes_buf(s1, sizeof(s1));
	randombytes_buf(s2, sizeof(s2));
	randombytes_buf(key, sizeof(key));
	keystore_t ks;
	cr_assert_eq(keystore_adopt_secret(dir, s1), 0);
	cr_assert_eq(keystore_open(&ks, dir, true), 0);
	cr_assert_arr_eq(ks.secret, s1, sizeof(s1));
	keystore_close(&ks);
	cr_assert_eq(keystore_adopt_secret(dir, s1), 0);
	cr_assert_eq(keystore_adopt_secret(dir, s2), 0, "no key: replaced");
	cr_assert_eq(keystore_open(&ks, dir, true), 0);
	cr_assert_arr_eq(ks.secret, s2, sizeof(s2));
	cr_assert_eq(keystore_put(&ks, ACCT_A, key), 0);
	keystore_close(&ks);
	cr_assert_eq(keystore_adopt_secret(dir, s1), -EEXIST);
	cr_assert_eq(keystore_open(&ks, dir, false), 0);
	cr_assert_arr_eq(ks.secret, s2, sizeof(s2));
	cr_assert_eq(keystore_get(&ks, ACCT_A, key), 0);
	keystore_close(&ks);
}
