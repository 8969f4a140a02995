/* test_index.c - the account index (logger/index.c): entries derived from
 * the log, statements walked from it, a torn tail, damage, a deleted file,
 * a file of another log, and the table file. */
#include "event.h"
#include "index.h"
#include "logfile.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TEST_ACCOUNTS 3
#define TEST_BASE 1000000000000000ull
#define TEST_EVENTS_MAX 400

static char test_dir[64];
static char test_idx[128];

static void test_setup(void)
{
	strcpy(test_dir, "/tmp/esb-index-XXXXXX");
	cr_assert_not_null(mkdtemp(test_dir));
	snprintf(test_idx, sizeof(test_idx), "%s/%s", test_dir, INDEX_FILE_NAME);
}

static void test_teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", test_dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(index, .init = test_setup, .fini = test_teardown);

/* Event seq of a history: 3 openings, then transfers and withdrawals. */
static void test_make(uint64_t seq, int salt, ledger_event_t *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->seq = seq;
	ev->ts_ms = 1000 + (int64_t)seq * 10;
	ev->account = TEST_BASE + (seq - 1) % TEST_ACCOUNTS;
	if (seq <= TEST_ACCOUNTS) {
		ev->type = LEDGER_EV_ACCOUNT_OPENED;
		ev->amount = 100000;
		snprintf(ev->email, sizeof(ev->email), "a%llu@x.org", (unsigned long long)seq);
		strcpy(ev->pwhash, "$argon2id$x");
	} else if (seq % 5 == 0) {
		ev->type = LEDGER_EV_MONEY_WITHDRAWN;
		ev->amount = 3 + salt;
	} else if (seq % 7 == 0) {
		ev->type = LEDGER_EV_ACCOUNT_VERIFIED; /* moves no money: no entry */
	} else {
		ev->type = LEDGER_EV_MONEY_TRANSFERRED;
		ev->to = TEST_BASE + seq % TEST_ACCOUNTS;
		ev->amount = (int64_t)(seq % 11) + 1 + salt;
	}
}

/* Appends events last_seq + 1 .. upto to the log as one batch. */
static void test_append(logfile_t *lf, uint64_t upto, int salt)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	uint8_t chain[LOGFILE_HASH_BYTES];
	memcpy(chain, lf->head_hash, sizeof(chain));
	for (uint64_t seq = lf->last_seq + 1; seq <= upto; seq++) {
		ledger_event_t ev;
		msg_buf_t b;
		msg_buf_init(&b);
		test_make(seq, salt, &ev);
		event_pack(&b.pk, &ev);
		cr_assert_eq(logfile_encode(seq, b.sb.data, b.sb.size, chain, &buf, &len, &cap), 0);
		msg_buf_free(&b);
	}
	cr_assert_eq(logfile_write(lf, lf->size_bytes, buf, len), 0);
	cr_assert_eq(logfile_commit(lf, buf, len, upto, chain), 0);
	free(buf);
}

static void test_log(logfile_t *lf, uint64_t upto, int salt)
{
	logfile_report_t rep;
	cr_assert_eq(logfile_open(lf, test_dir, false, &rep), 0);
	if (upto > lf->last_seq)
		test_append(lf, upto, salt);
}

/* The statement a replay of events 1..upto gives for account a. */
static size_t test_expected(uint64_t a, uint64_t upto, int salt, index_entry_t *out)
{
	size_t n = 0;
	int64_t bal = 0;
	for (uint64_t seq = 1; seq <= upto; seq++) {
		ledger_event_t ev;
		test_make(seq, salt, &ev);
		int64_t amt = 0;
		uint64_t cp = 0;
		if (ev.type == LEDGER_EV_ACCOUNT_OPENED && ev.account == a)
			amt = ev.amount;
		else if (ev.type == LEDGER_EV_MONEY_WITHDRAWN && ev.account == a)
			amt = -ev.amount;
		else if (ev.type == LEDGER_EV_MONEY_TRANSFERRED && ev.account == a)
			amt = -ev.amount, cp = ev.to;
		else if (ev.type == LEDGER_EV_MONEY_TRANSFERRED && ev.to == a)
			amt = ev.amount, cp = ev.account;
		else
			continue;
		bal += amt;
		out[n++] = (index_entry_t){ .seq = seq, .ts_ms = ev.ts_ms, .account = a,
			                    .counterparty = cp, .amount = amt, .balance = bal,
			                    .type = (uint8_t)ev.type };
	}
	return n;
}

/* Every account's whole statement from ix equals the replay. */
static void test_check(const index_t *ix, uint64_t upto, int salt)
{
	static index_entry_t want[TEST_EVENTS_MAX * 2], got[INDEX_PAGE_MAX];
	for (uint64_t a = TEST_BASE; a < TEST_BASE + TEST_ACCOUNTS; a++) {
		size_t n = test_expected(a, upto, salt, want);
		uint64_t last;
		int64_t bal;
		cr_assert(index_lookup(ix, a, &last, &bal));
		cr_assert_eq(bal, want[n - 1].balance);
		index_query_t q = { .since_ms = INT64_MIN, .until_ms = INT64_MAX, .limit = 1000 };
		index_page_t p = { .out = got };
		cr_assert_eq(index_walk(ix, last, &q, &p), 0);
		cr_assert_eq(p.n, n, "account %llu: %zu entries, want %zu",
		             (unsigned long long)a, p.n, n);
		for (size_t i = 0; i < n; i++) {
			cr_assert_eq(got[i].seq, want[i].seq);
			cr_assert_eq(got[i].ts_ms, want[i].ts_ms);
			cr_assert_eq(got[i].amount, want[i].amount, "seq %llu",
			             (unsigned long long)want[i].seq);
			cr_assert_eq(got[i].balance, want[i].balance);
			cr_assert_eq(got[i].counterparty, want[i].counterparty);
			cr_assert_eq(got[i].type, want[i].type);
		}
		cr_assert_eq(p.opening_balance, 0);
		cr_assert_eq(p.closing_balance, want[n - 1].balance);
		cr_assert(!p.more);
	}
	cr_assert_eq(ix->last_seq, upto);
}

static void test_index_open(index_t *ix, const logfile_t *lf, index_report_t *rep)
{
	int r = index_open(ix, test_dir, lf, rep);
	cr_assert_eq(r, 0, "index_open: %s", strerror(-r));
}

static off_t test_idx_size(void)
{
	struct stat st;
	cr_assert_eq(stat(test_idx, &st), 0);
	return st.st_size;
}

Test(index, built_from_the_log_and_kept_up)
{
	logfile_t lf;
	index_t ix;
	index_report_t rep;
	test_log(&lf, 100, 0);
	test_index_open(&ix, &lf, &rep);
	cr_assert(rep.created);
	cr_assert_eq(rep.caught_up, 100);
	test_check(&ix, 100, 0);
	index_close(&ix);
	test_append(&lf, 150, 0); /* a logger that ran without the index */
	test_index_open(&ix, &lf, &rep);
	cr_assert(!rep.created);
	test_check(&ix, 150, 0);
	index_close(&ix);
	logfile_close(&lf);
}

Test(index, torn_tail_and_damage_are_cut_and_derived_again)
{
	logfile_t lf;
	index_t ix;
	index_report_t rep;
	test_log(&lf, 120, 0);
	test_index_open(&ix, &lf, &rep);
	index_close(&ix);
	off_t full = test_idx_size();
	cr_assert_eq(truncate(test_idx, full - 13), 0); /* a torn last entry */
	test_index_open(&ix, &lf, &rep);
	cr_assert(!rep.created);
	cr_assert_geq(rep.cut_entries, 1);
	test_check(&ix, 120, 0);
	index_close(&ix);
	cr_assert_eq(test_idx_size(), full);
	int fd = open(test_idx, O_WRONLY); /* a flipped byte in entry 40 */
	cr_assert_eq(pwrite(fd, "\xff", 1, INDEX_HEADER_BYTES + 39 * INDEX_ENTRY_BYTES + 35), 1);
	close(fd);
	test_index_open(&ix, &lf, &rep);
	cr_assert_geq(rep.cut_entries, full / INDEX_ENTRY_BYTES - 40);
	test_check(&ix, 120, 0);
	index_close(&ix);
	cr_assert_eq(test_idx_size(), full);
	logfile_close(&lf);
}

Test(index, deleted_or_garbage_file_is_rebuilt)
{
	logfile_t lf;
	index_t ix;
	index_report_t rep;
	test_log(&lf, 80, 0);
	test_index_open(&ix, &lf, &rep);
	index_close(&ix);
	off_t full = test_idx_size();
	cr_assert_eq(unlink(test_idx), 0);
	test_index_open(&ix, &lf, &rep);
	cr_assert(rep.created);
	test_check(&ix, 80, 0);
	index_close(&ix);
	cr_assert_eq(test_idx_size(), full);
	FILE *f = fopen(test_idx, "w");
	fputs("not an index at all", f);
	fclose(f);
	test_index_open(&ix, &lf, &rep);
	cr_assert(rep.created);
	test_check(&ix, 80, 0);
	index_close(&ix);
	logfile_close(&lf);
}

Test(index, an_index_of_another_log_is_rebuilt)
{
	logfile_t lf;
	index_t ix;
	index_report_t rep;
	char log_path[160];
	test_log(&lf, 60, 0);
	test_index_open(&ix, &lf, &rep);
	index_close(&ix);
	logfile_close(&lf);
	snprintf(log_path, sizeof(log_path), "%s/%s", test_dir, LOGFILE_NAME);
	cr_assert_eq(unlink(log_path), 0);
	test_log(&lf, 70, 1); /* other amounts, same seqs */
	test_index_open(&ix, &lf, &rep);
	test_check(&ix, 70, 1);
	index_close(&ix);
	logfile_close(&lf);
}

Test(index, the_table_file_spares_the_scan_and_a_stale_one_is_not_used)
{
	logfile_t lf;
	index_t ix;
	index_report_t rep;
	test_log(&lf, 90, 0);
	test_index_open(&ix, &lf, &rep);
	cr_assert_eq(index_save_table(&ix), 0);
	index_close(&ix);
	test_index_open(&ix, &lf, &rep);
	cr_assert(rep.table_loaded);
	test_check(&ix, 90, 0);
	cr_assert_eq(index_save_table(&ix), 0);
	index_close(&ix);
	usleep(20000); /* past the file system's time granularity */
	int fd = open(test_idx, O_WRONLY); /* garbage in entry 10, the table untouched */
	cr_assert_eq(pwrite(fd, "\xff\xff\xff\xff", 4, INDEX_HEADER_BYTES + 9 * INDEX_ENTRY_BYTES), 4);
	close(fd);
	test_index_open(&ix, &lf, &rep);
	cr_assert(!rep.table_loaded, "the file changed after the table was written");
	cr_assert_geq(rep.cut_entries, 10);
	test_check(&ix, 90, 0);
	cr_assert_eq(index_save_table(&ix), 0);
	index_close(&ix);
	off_t full = test_idx_size(); /* the table covers more than the file now holds */
	cr_assert_eq(truncate(test_idx, full - 5 * INDEX_ENTRY_BYTES), 0);
	test_index_open(&ix, &lf, &rep);
	cr_assert(!rep.table_loaded);
	test_check(&ix, 90, 0);
	index_close(&ix);
	logfile_close(&lf);
}

Test(index, periods_and_pages)
{
	logfile_t lf;
	index_t ix;
	index_report_t rep;
	static index_entry_t want[TEST_EVENTS_MAX * 2], got[INDEX_PAGE_MAX];
	test_log(&lf, 300, 0);
	test_index_open(&ix, &lf, &rep);
	uint64_t a = TEST_BASE + 1, last;
	int64_t bal;
	size_t n = test_expected(a, 300, 0, want);
	cr_assert(index_lookup(&ix, a, &last, &bal));
	index_query_t q = { .since_ms = want[10].ts_ms, .until_ms = want[n - 10].ts_ms, .limit = 7 };
	index_page_t p = { .out = got };
	size_t at = 10;
	for (;;) {
		cr_assert_eq(index_walk(&ix, last, &q, &p), 0);
		cr_assert_eq(p.opening_balance, want[9].balance);
		cr_assert_eq(p.closing_balance, want[n - 11].balance);
		for (size_t i = 0; i < p.n; i++)
			cr_assert_eq(got[i].seq, want[at++].seq);
		if (!p.more)
			break;
		cr_assert_eq(p.n, 7);
		q.after_seq = got[p.n - 1].seq;
	}
	cr_assert_eq(at, n - 10);
	index_close(&ix);
	logfile_close(&lf);
}
