/*
 * test_snapfile.c - snapshot files: a state written and read back is the same
 * state; listing and keeping the newest; every kind of damage is refused.
 */
#include "snapfile.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define T0             1700000000000LL
#define FIRST_ACCOUNT  1000000000000000ULL
#define HEADER_BYTES   88
#define PATH_MAX_BYTES 4096

static char dir[] = "/tmp/test_snapfile.XXXXXX";
static ledger_t *l;
static uint8_t chain[LOGFILE_HASH_BYTES];

static void setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
	l = ledger_new();
	cr_assert_not_null(l);
	for (size_t i = 0; i < sizeof(chain); i++)
		chain[i] = (uint8_t)(i * 7 + 1);
}

static void teardown(void)
{
	char cmd[PATH_MAX_BYTES + 16];
	ledger_free(l);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
	strcpy(dir, "/tmp/test_snapfile.XXXXXX");
}

TestSuite(snapfile, .init = setup, .fini = teardown);

static ledger_event_t next_event(ledger_event_type_t type)
{
	ledger_event_t ev;
	memset(&ev, 0, sizeof(ev));
	ev.seq = ledger_last_seq(l) + 1;
	ev.ts_ms = T0 + (int64_t)ev.seq * LEDGER_DAY_MS / 10;
	ev.type = type;
	return ev;
}

static void apply_ok(const ledger_event_t *ev)
{
	cr_assert_eq(ledger_check_event(l, ev), PROTO_OK, "event %" PRIu64, ev->seq);
	cr_assert_eq(ledger_apply(l, ev, NULL), 0);
}

static void open_acct(uint64_t i)
{
	ledger_event_t ev = next_event(LEDGER_EV_ACCOUNT_OPENED);
	ev.account = FIRST_ACCOUNT + i;
	snprintf(ev.email, sizeof(ev.email), "user%" PRIu64 "@example.com", i);
	snprintf(ev.pwhash, sizeof(ev.pwhash), "$argon2id$v=19$m=8,t=1,p=1$%" PRIu64, i);
	ev.amount = LEDGER_OPEN_BALANCE;
	memset(ev.code_hash, (int)(i & 0xff), sizeof(ev.code_hash));
	apply_ok(&ev);
}

static void verify_acct(uint64_t i)
{
	ledger_event_t ev = next_event(LEDGER_EV_ACCOUNT_VERIFIED);
	ev.account = FIRST_ACCOUNT + i;
	apply_ok(&ev);
}

static void move(ledger_event_type_t type, uint64_t from, uint64_t to, int64_t amount,
		 const char *key)
{
	ledger_event_t ev = next_event(type);
	ev.account = FIRST_ACCOUNT + from;
	ev.to = FIRST_ACCOUNT + to;
	ev.amount = amount;
	if (key) {
		ev.has_key = true;
		ev.key_len = strlen(key);
		memcpy(ev.key, key, ev.key_len);
		memset(ev.fp, 0x5a, sizeof(ev.fp));
	}
	apply_ok(&ev);
}

/* n accounts, the even ones verified, with transfers, withdrawals and keys. */
static void build_state(uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		open_acct(i);
	for (uint64_t i = 0; i < n; i += 2)
		verify_acct(i);
	for (uint64_t i = 0; i + 2 < n; i += 2) {
		char key[32];
		snprintf(key, sizeof(key), "k-%" PRIu64, i);
		move(LEDGER_EV_MONEY_TRANSFERRED, i, i + 2, 1 + (int64_t)(i % 500), key);
		move(LEDGER_EV_MONEY_WITHDRAWN, i + 2, 0, 3, NULL);
	}
}

/* Packs the state and writes it as snapshot seq = last_seq. */
static uint64_t write_state(void)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	ledger_pack(l, &pk);
	uint64_t seq = ledger_last_seq(l);
	cr_assert_eq(snapfile_write(dir, seq, chain, sb.data, sb.size), 0);
	msgpack_sbuffer_destroy(&sb);
	return seq;
}

/* Writes a tiny valid snapshot at seq (the body need not match seq here). */
static void write_raw(uint64_t seq)
{
	static const char body[] = "\x80"; /* an empty map */
	cr_assert_eq(snapfile_write(dir, seq, chain, body, 1), 0);
}

static void snap_path(char *out, uint64_t seq, const char *suffix)
{
	snprintf(out, PATH_MAX_BYTES, "%s/" SNAPFILE_DIR "/%020" PRIu64 ".snap%s", dir, seq,
		 suffix);
}

static off_t file_size(const char *path)
{
	struct stat st;
	cr_assert_eq(stat(path, &st), 0, "%s", path);
	return st.st_size;
}

static void flip_byte(uint64_t seq, off_t at)
{
	char path[PATH_MAX_BYTES];
	snap_path(path, seq, "");
	int fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0);
	unsigned char b;
	cr_assert_eq(pread(fd, &b, 1, at), 1);
	b ^= 0x01;
	cr_assert_eq(pwrite(fd, &b, 1, at), 1);
	close(fd);
}

static int read_rc(uint64_t seq)
{
	snapfile_t f;
	int rc = snapfile_read(dir, seq, &f);
	snapfile_free(&f);
	return rc;
}

static const ledger_t *cmp_from; /* the ledger each_account_cmp walks */

static int each_account_cmp(const ledger_account_t *a, void *arg)
{
	const ledger_t *other = arg;
	const ledger_account_t *b = ledger_find(other, a->number);
	cr_assert_not_null(b, "account %" PRIu64 " missing", a->number);
	cr_assert_eq(a->balance, b->balance);
	cr_assert_eq(a->verified, b->verified);
	cr_assert_eq(a->opened_at_ms, b->opened_at_ms);
	cr_assert_eq(a->last_activity_ms, b->last_activity_ms);
	char ida[LEDGER_EMAIL_BYTES_MAX + 1], idb[LEDGER_EMAIL_BYTES_MAX + 1];
	char pwa[LEDGER_PWHASH_BYTES_MAX], pwb[LEDGER_PWHASH_BYTES_MAX];
	ledger_account_identity(a, ida);
	ledger_account_identity(b, idb);
	ledger_account_pwhash(cmp_from, a, pwa);
	ledger_account_pwhash(other, b, pwb);
	cr_assert_str_eq(ida, idb);
	cr_assert_str_eq(pwa, pwb);
	cr_assert_eq(memcmp(a->code_hash, b->code_hash, LEDGER_CODE_HASH_BYTES), 0);
	cr_assert_eq(ledger_find_email(other, ida, strlen(ida)), b);
	return 0;
}

static int each_key_cmp(const char *key, size_t n, const ledger_key_entry_t *e, void *arg)
{
	const ledger_key_entry_t *f = ledger_find_key(arg, key, n);
	cr_assert_not_null(f, "key %.*s missing", (int)n, key);
	cr_assert_eq(e->op, f->op);
	cr_assert_eq(e->seq, f->seq);
	cr_assert_eq(e->account, f->account);
	cr_assert_eq(e->balance, f->balance);
	cr_assert_eq(memcmp(e->fp, f->fp, LEDGER_FP_BYTES), 0);
	return 0;
}

static int count_keys(const char *key, size_t n, const ledger_key_entry_t *e, void *arg)
{
	(*(size_t *)arg)++;
	return 0;
}

static void assert_same_state(const ledger_t *a, const ledger_t *b)
{
	cr_assert_eq(ledger_last_seq(a), ledger_last_seq(b));
	cr_assert_eq(ledger_last_ts(a), ledger_last_ts(b));
	cr_assert_eq(ledger_account_count(a), ledger_account_count(b));
	cr_assert_eq(ledger_total_balance(a), ledger_total_balance(b));
	cr_assert_eq(ledger_total_withdrawn(a), ledger_total_withdrawn(b));
	cmp_from = a;
	ledger_each_account(a, each_account_cmp, (void *)b);
	size_t ka = 0, kb = 0;
	ledger_each_key(a, count_keys, &ka);
	ledger_each_key(b, count_keys, &kb);
	cr_assert_eq(ka, kb);
	ledger_each_key(a, each_key_cmp, (void *)b);
	int64_t days[][3] = {{0, 0, 0},      {2023, 0, 0},  {2023, 11, 0},
			     {2023, 11, 16}, {2023, 12, 1}, {2024, 1, 0}};
	for (size_t i = 0; i < sizeof(days) / sizeof(days[0]); i++)
		cr_assert_eq(ledger_sum_transactions(a, days[i][0], days[i][1], days[i][2]),
			     ledger_sum_transactions(b, days[i][0], days[i][1], days[i][2]),
			     "sum %" PRId64 "-%" PRId64 "-%" PRId64, days[i][0], days[i][1],
			     days[i][2]);
	int64_t now = ledger_last_ts(a) + LEDGER_DAY_MS;
	cr_assert_eq(ledger_inactive_users(a, 1, now), ledger_inactive_users(b, 1, now));
}

/* Reads snapshot seq back into a new ledger, checking its header. */
static ledger_t *read_back(uint64_t seq)
{
	snapfile_t f;
	ledger_t *out = NULL;
	cr_assert_eq(snapfile_read(dir, seq, &f), 0);
	cr_assert_eq(f.seq, seq);
	cr_assert_eq(memcmp(f.chain, chain, sizeof(chain)), 0);
	cr_assert_eq(snapfile_to_ledger(&f, &out), 0);
	snapfile_free(&f);
	return out;
}

Test(snapfile, round_trip_same_state)
{
	build_state(40);
	uint64_t seq = write_state();
	ledger_t *back = read_back(seq);
	assert_same_state(l, back);
	cr_assert_gt(ledger_total_withdrawn(back), 0);
	cr_assert(ledger_find(back, FIRST_ACCOUNT + 2)->verified);
	cr_assert_not(ledger_find(back, FIRST_ACCOUNT + 1)->verified);
	cr_assert_not_null(ledger_find_key(back, "k-4", 3));
	ledger_free(back);
}

Test(snapfile, empty_state_round_trips)
{
	uint64_t seq = write_state();
	cr_assert_eq(seq, 0);
	ledger_t *back = read_back(0);
	assert_same_state(l, back);
	ledger_free(back);
}

Test(snapfile, ten_thousand_accounts_round_trip, .timeout = 60)
{
	build_state(10000);
	uint64_t seq = write_state();
	ledger_t *back = read_back(seq);
	cr_assert_eq(ledger_account_count(back), 10000);
	assert_same_state(l, back);
	ledger_free(back);
}

Test(snapfile, list_is_newest_first)
{
	uint64_t seqs[SNAPFILE_LIST_MAX];
	cr_assert_eq(snapfile_list(dir, seqs, SNAPFILE_LIST_MAX), -ENOENT);
	write_raw(20);
	write_raw(3);
	write_raw(100);
	cr_assert_eq(snapfile_list(dir, seqs, SNAPFILE_LIST_MAX), 3);
	cr_assert_eq(seqs[0], 100);
	cr_assert_eq(seqs[1], 20);
	cr_assert_eq(seqs[2], 3);
	cr_assert_eq(snapfile_list(dir, seqs, 2), 2);
	cr_assert_eq(seqs[0], 100);
	cr_assert_eq(seqs[1], 20);
}

Test(snapfile, list_finds_the_newest_among_many)
{
	char path[PATH_MAX_BYTES];
	/* 2000 names, newest created first (not pruned: not from snapfile_write) */
	cr_assert_gt(2000, 4 * SNAPFILE_LIST_MAX);
	cr_assert_eq(mkdir(strcat(strcpy(path, dir), "/" SNAPFILE_DIR), 0700), 0);
	for (uint64_t s = 2000; s >= 1; s--) {
		snap_path(path, s, "");
		FILE *f = fopen(path, "w");
		cr_assert_not_null(f);
		fclose(f);
	}
	uint64_t seqs[SNAPFILE_LIST_MAX];
	cr_assert_eq(snapfile_list(dir, seqs, 3), 3);
	cr_assert_eq(seqs[0], 2000);
	cr_assert_eq(seqs[1], 1999);
	cr_assert_eq(seqs[2], 1998);
}

Test(snapfile, keeps_only_the_newest)
{
	uint64_t seqs[SNAPFILE_LIST_MAX];
	for (uint64_t s = 1; s <= 6; s++)
		write_raw(s * 10);
	cr_assert_eq(snapfile_list(dir, seqs, SNAPFILE_LIST_MAX), SNAPFILE_KEEP);
	cr_assert_eq(SNAPFILE_KEEP, 3);
	cr_assert_eq(seqs[0], 60);
	cr_assert_eq(seqs[1], 50);
	cr_assert_eq(seqs[2], 40);
	char path[PATH_MAX_BYTES];
	snap_path(path, 30, "");
	cr_assert_eq(access(path, F_OK), -1);
	/* an older snapshot written late does not push out newer ones */
	write_raw(5);
	cr_assert_eq(snapfile_list(dir, seqs, SNAPFILE_LIST_MAX), SNAPFILE_KEEP);
	cr_assert_eq(seqs[2], 40);
}

Test(snapfile, tmp_files_and_strangers_are_ignored)
{
	char path[PATH_MAX_BYTES];
	write_raw(7);
	const char *names[] = {"00000000000000000009.snap.tmp", "9.snap", "notes.txt",
			       "0000000000000000000x.snap", "000000000000000000011.snap"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/" SNAPFILE_DIR "/%s", dir, names[i]);
		FILE *f = fopen(path, "w");
		cr_assert_not_null(f);
		fputs("junk", f);
		fclose(f);
	}
	uint64_t seqs[SNAPFILE_LIST_MAX];
	cr_assert_eq(snapfile_list(dir, seqs, SNAPFILE_LIST_MAX), 1);
	cr_assert_eq(seqs[0], 7);
	/* a stale temporary is overwritten by the next write of that seq */
	write_raw(9);
	cr_assert_eq(read_rc(9), 0);
	snap_path(path, 9, ".tmp");
	cr_assert_eq(access(path, F_OK), -1);
}

Test(snapfile, remove_deletes_one)
{
	write_raw(4);
	write_raw(8);
	cr_assert_eq(snapfile_remove(dir, 8), 0);
	cr_assert_eq(snapfile_remove(dir, 8), -ENOENT);
	uint64_t seqs[SNAPFILE_LIST_MAX];
	cr_assert_eq(snapfile_list(dir, seqs, SNAPFILE_LIST_MAX), 1);
	cr_assert_eq(seqs[0], 4);
}

Test(snapfile, a_flipped_byte_anywhere_is_damage)
{
	build_state(6);
	uint64_t seq = write_state();
	char path[PATH_MAX_BYTES];
	snap_path(path, seq, "");
	off_t size = file_size(path);
	/* magic, seq, chain, body_len (high and low byte), checksum, body */
	off_t at[] = {0,
		      5,
		      8,
		      15,
		      16,
		      47,
		      48,
		      55,
		      56,
		      70,
		      87,
		      HEADER_BYTES,
		      HEADER_BYTES + 1,
		      (HEADER_BYTES + size) / 2,
		      size - 1};
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		flip_byte(seq, at[i]);
		cr_assert_eq(read_rc(seq), -EBADMSG, "flipped byte at %lld", (long long)at[i]);
		flip_byte(seq, at[i]);
		cr_assert_eq(read_rc(seq), 0, "restored byte at %lld", (long long)at[i]);
	}
}

Test(snapfile, wrong_version_is_unsupported)
{
	write_raw(12);
	flip_byte(12, 7); /* version 1 -> 0 */
	cr_assert_eq(read_rc(12), -EPROTONOSUPPORT);
	flip_byte(12, 7);
	flip_byte(12, 6); /* 0x0101 */
	cr_assert_eq(read_rc(12), -EPROTONOSUPPORT);
}

Test(snapfile, truncated_is_damage)
{
	build_state(6);
	uint64_t seq = write_state();
	char path[PATH_MAX_BYTES];
	snap_path(path, seq, "");
	off_t size = file_size(path);
	off_t cut[] = {size - 1, HEADER_BYTES + 1, HEADER_BYTES, HEADER_BYTES - 1, 10, 0};
	for (size_t i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
		cr_assert_eq(truncate(path, cut[i]), 0);
		cr_assert_eq(read_rc(seq), -EBADMSG, "cut to %lld", (long long)cut[i]);
	}
}

Test(snapfile, trailing_bytes_are_damage)
{
	write_raw(3);
	char path[PATH_MAX_BYTES];
	snap_path(path, 3, "");
	FILE *f = fopen(path, "a");
	cr_assert_not_null(f);
	fputc(0, f);
	fclose(f);
	cr_assert_eq(read_rc(3), -EBADMSG);
}

Test(snapfile, a_file_named_for_another_seq_is_damage)
{
	build_state(4);
	uint64_t seq = write_state();
	char from[PATH_MAX_BYTES], to[PATH_MAX_BYTES];
	snap_path(from, seq, "");
	snap_path(to, seq + 1, "");
	cr_assert_eq(rename(from, to), 0);
	cr_assert_eq(read_rc(seq + 1), -EBADMSG);
	cr_assert_eq(read_rc(seq), -ENOENT);
}

Test(snapfile, a_body_for_another_seq_does_not_load)
{
	build_state(4);
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	ledger_pack(l, &pk);
	uint64_t seq = ledger_last_seq(l) + 1; /* header says one more than the state */
	cr_assert_eq(snapfile_write(dir, seq, chain, sb.data, sb.size), 0);
	msgpack_sbuffer_destroy(&sb);
	snapfile_t f;
	ledger_t *out = NULL;
	cr_assert_eq(snapfile_read(dir, seq, &f), 0);
	cr_assert_eq(snapfile_to_ledger(&f, &out), -EINVAL);
	cr_assert_null(out);
	snapfile_free(&f);
}

Test(snapfile, a_body_that_is_not_a_state_does_not_load)
{
	static const char *bodies[] = {"\x80", "\x91\x01", "\xc1", "\x80\x80"};
	static const size_t lens[] = {1, 2, 1, 2};
	for (size_t i = 0; i < 4; i++) {
		cr_assert_eq(snapfile_write(dir, 0, chain, bodies[i], lens[i]), 0);
		snapfile_t f;
		ledger_t *out = NULL;
		cr_assert_eq(snapfile_read(dir, 0, &f), 0);
		cr_assert_eq(snapfile_to_ledger(&f, &out), -EINVAL, "body %zu", i);
		snapfile_free(&f);
	}
}
