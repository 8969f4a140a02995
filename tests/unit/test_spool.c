/*
 * test_spool.c - the mail spool and address book (common/spool.c), which
 * the mailer writes and `esbank mail` reads.
 */
#include "spool.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[64];
static spool_t sp;

static void t_setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/test_spool.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	cr_assert_eq(spool_open(&sp, dir), 0);
}

static void t_teardown(void)
{
	spool_close(&sp);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

static spool_entry_t t_entry(uint64_t seq)
{
	spool_entry_t e = { .seq = seq, .type = LEDGER_EV_MONEY_WITHDRAWN, .ts_ms = 1700000000123,
	                    .accepted_ms = 1700000001000 };
	snprintf(e.to, sizeof(e.to), "alice@example.com");
	snprintf(e.subject, sizeof(e.subject), "Withdrawal from your esbank account");
	e.msg_len = (size_t)snprintf(e.msg, sizeof(e.msg), "Subject: x\r\n\r\nbody %llu\r\n",
	                             (unsigned long long)seq);
	return e;
}

Test(spool, encode_decode_round_trip)
{
	static spool_entry_t e, d;
	static char buf[SPOOL_FILE_BYTES_MAX];
	size_t len;
	e = t_entry(42);
	snprintf(e.reason, sizeof(e.reason), "HTTP 400: bad");
	e.attempts = 3;
	cr_assert_eq(spool_encode(&e, buf, sizeof(buf), &len), 0);
	cr_assert_eq(spool_decode(buf, len, &d), 0);
	cr_assert_eq(d.seq, 42);
	cr_assert_eq(d.type, LEDGER_EV_MONEY_WITHDRAWN);
	cr_assert_eq(d.ts_ms, e.ts_ms);
	cr_assert_eq(d.accepted_ms, e.accepted_ms);
	cr_assert_eq(d.attempts, 3);
	cr_assert_str_eq(d.to, e.to);
	cr_assert_str_eq(d.reason, "HTTP 400: bad");
	cr_assert_eq(d.msg_len, e.msg_len);
	cr_assert_eq(memcmp(d.msg, e.msg, e.msg_len), 0);
	cr_assert_eq(spool_decode(buf, len - e.msg_len - 1, &d), -EBADMSG); /* no blank line */
	buf[0] = 'X';
	cr_assert_eq(spool_decode(buf, len, &d), -EBADMSG);
}

Test(spool, put_list_read_remove, .init = t_setup, .fini = t_teardown)
{
	static spool_entry_t e, d;
	uint64_t seqs_in[] = { 10, 2, 7 };
	for (size_t i = 0; i < 3; i++) {
		e = t_entry(seqs_in[i]);
		cr_assert_eq(spool_put(&sp, &e), 0);
	}
	cr_assert_eq(spool_sync(&sp), 0);
	uint64_t *seqs;
	size_t n;
	cr_assert_eq(spool_list(&sp, SPOOL_QUEUE, &seqs, &n), 0);
	cr_assert_eq(n, 3);
	cr_assert(seqs[0] == 2 && seqs[1] == 7 && seqs[2] == 10);
	free(seqs);
	cr_assert_eq(spool_read(&sp, SPOOL_QUEUE, 7, &d), 0);
	cr_assert_eq(d.seq, 7);
	cr_assert_eq(spool_remove(&sp, 7), 0);
	cr_assert_eq(spool_read(&sp, SPOOL_QUEUE, 7, &d), -ENOENT);
	cr_assert_not(spool_exists(&sp, SPOOL_QUEUE, 7));
}

Test(spool, bury_and_requeue, .init = t_setup, .fini = t_teardown)
{
	static spool_entry_t e, d;
	e = t_entry(5);
	cr_assert_eq(spool_put(&sp, &e), 0);
	cr_assert_eq(spool_bury(&sp, &e, "HTTP 400: no\r\nInjected: x", 1), 0);
	cr_assert_not(spool_exists(&sp, SPOOL_QUEUE, 5));
	cr_assert_eq(spool_read(&sp, SPOOL_DEAD, 5, &d), 0);
	cr_assert_str_eq(d.reason, "HTTP 400: no  Injected: x");
	cr_assert_eq(d.attempts, 1);
	cr_assert_eq(spool_requeue(&sp, 5, 1800000000000), 0);
	cr_assert_not(spool_exists(&sp, SPOOL_DEAD, 5));
	cr_assert_eq(spool_read(&sp, SPOOL_QUEUE, 5, &d), 0);
	cr_assert_eq(d.reason[0], '\0');
	cr_assert_eq(d.accepted_ms, 1800000000000);
	cr_assert_eq(spool_requeue(&sp, 5, 0), -ENOENT);
}

Test(spool, temporary_files_are_not_listed, .init = t_setup, .fini = t_teardown)
{
	int fd = openat(sp.queue_fd, ".tmp-9", O_WRONLY | O_CREAT, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	uint64_t *seqs;
	size_t n;
	cr_assert_eq(spool_list(&sp, SPOOL_QUEUE, &seqs, &n), 0);
	cr_assert_eq(n, 0);
	free(seqs);
}

Test(spool, address_book_survives_and_cuts_torn_line, .init = t_setup, .fini = t_teardown)
{
	cr_assert_eq(spool_addr_load(&sp), 0);
	cr_assert_eq(spool_addr_learn(&sp, 1234567890123456ULL, "a@example.com"), 0);
	cr_assert_eq(spool_addr_learn(&sp, 2234567890123456ULL, "b@example.com"), 0);
	cr_assert_eq(spool_addr_learn(&sp, 1234567890123456ULL, "c@example.com"), 0);
	cr_assert_eq(spool_sync(&sp), 0);
	cr_assert_eq(write(sp.addr_fd, "3234567890123456 torn@exa", 25), 25);
	spool_close(&sp);
	cr_assert_eq(spool_open(&sp, dir), 0);
	cr_assert_eq(spool_addr_load(&sp), 0);
	cr_assert_str_eq(spool_addr_find(&sp, 1234567890123456ULL), "c@example.com");
	cr_assert_str_eq(spool_addr_find(&sp, 2234567890123456ULL), "b@example.com");
	cr_assert_null(spool_addr_find(&sp, 3234567890123456ULL));
	cr_assert_eq(spool_addr_learn(&sp, 3234567890123456ULL, "d@example.com"), 0);
	spool_close(&sp);
	cr_assert_eq(spool_open(&sp, dir), 0);
	cr_assert_eq(spool_addr_load(&sp), 0);
	cr_assert_str_eq(spool_addr_find(&sp, 3234567890123456ULL), "d@example.com");
}

Test(spool, many_addresses, .init = t_setup, .fini = t_teardown)
{
	cr_assert_eq(spool_addr_load(&sp), 0);
	for (uint64_t i = 0; i < 5000; i++)
		cr_assert_eq(spool_addr_learn(&sp, 1000000000000000ULL + i * 7919, "x@example.com"), 0);
	cr_assert_eq(sp.addr_n, 5000);
	cr_assert_not_null(spool_addr_find(&sp, 1000000000000000ULL + 4999 * 7919));
	cr_assert_null(spool_addr_find(&sp, 1000000000000001ULL));
}
