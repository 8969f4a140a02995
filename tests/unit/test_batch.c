/* test_batch.c - replicator/batch.c: the stream message codec (records as in
 * events.log, chained), the msg id, the takeover event. */
#include "replicator.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	uint64_t seqs[64];
	size_t n;
	uint8_t last[LOGFILE_HASH_BYTES];
} got_t;

static int collect(uint64_t seq, const char *body, size_t len,
                   const uint8_t hash[LOGFILE_HASH_BYTES], void *arg)
{
	got_t *g = arg;
	g->seqs[g->n++] = seq;
	memcpy(g->last, hash, LOGFILE_HASH_BYTES);
	return 0;
}

/* Records first..last chained from *chain, body {"seq":s} as msgpack. */
static void records(uint64_t first, uint64_t last, uint8_t chain[LOGFILE_HASH_BYTES], char **buf,
                    size_t *len, size_t *cap)
{
	for (uint64_t s = first; s <= last; s++) {
		char body[] = { (char)0x81, (char)0xa3, 's', 'e', 'q', (char)(s & 0x7f) };
		cr_assert_eq(logfile_encode(s, body, sizeof(body), chain, buf, len, cap), 0);
	}
}

Test(batch, decodes_a_chained_message_and_continues_the_chain)
{
	uint8_t chain[LOGFILE_HASH_BYTES] = { 0 }, start[LOGFILE_HASH_BYTES] = { 0 };
	char *buf = NULL;
	size_t len = 0, cap = 0;
	records(1, 5, chain, &buf, &len, &cap);
	got_t g = { 0 };
	cr_assert_eq(batch_decode(buf, len, start, collect, &g), 0);
	cr_assert_eq(g.n, 5);
	cr_assert_eq(g.seqs[0], 1);
	cr_assert_eq(g.seqs[4], 5);
	cr_assert_eq(memcmp(g.last, chain, LOGFILE_HASH_BYTES), 0, "the head is the chain's");
	/* the next message chains to this one's last hash */
	char *b2 = NULL;
	size_t l2 = 0, c2 = 0;
	uint8_t mid[LOGFILE_HASH_BYTES];
	memcpy(mid, chain, sizeof(mid));
	records(6, 8, chain, &b2, &l2, &c2);
	got_t g2 = { 0 };
	cr_assert_eq(batch_decode(b2, l2, mid, collect, &g2), 0);
	cr_assert_eq(g2.seqs[0], 6);
	cr_assert_eq(batch_decode(b2, l2, start, collect, &g2), -EBADMSG, "a wrong prev is refused");
	got_t g3 = { 0 };
	cr_assert_eq(batch_decode(b2, l2, NULL, collect, &g3), 0, "unknown prev: first taken on trust");
	cr_assert_eq(g3.n, 3);
	free(buf);
	free(b2);
}

Test(batch, refuses_damage_truncation_and_gaps)
{
	uint8_t chain[LOGFILE_HASH_BYTES] = { 0 }, start[LOGFILE_HASH_BYTES] = { 0 };
	char *buf = NULL;
	size_t len = 0, cap = 0;
	records(1, 3, chain, &buf, &len, &cap);
	got_t g = { 0 };
	size_t rec = len / 3; /* the three records are the same size */
	for (size_t cut = 1; cut < len; cut += 7)
		if (cut % rec)
			cr_assert_eq(batch_decode(buf, cut, start, collect, &g), -EBADMSG, "cut at %zu",
			             cut);
	for (size_t at = 0; at < len; at += 5) {
		buf[at] ^= 0x10;
		g.n = 0;
		cr_assert_eq(batch_decode(buf, len, start, collect, &g), -EBADMSG, "flip at %zu", at);
		buf[at] ^= 0x10;
	}
	cr_assert_eq(batch_decode(buf, 0, start, collect, &g), -EBADMSG, "empty");
	/* records 1..3 then 5..5 (4 missing): a gap */
	char *gap = NULL;
	size_t gl = 0, gc = 0;
	uint8_t c2[LOGFILE_HASH_BYTES] = { 0 };
	records(1, 3, c2, &gap, &gl, &gc);
	records(5, 5, c2, &gap, &gl, &gc);
	cr_assert_eq(batch_decode(gap, gl, start, collect, &g), -EBADMSG);
	free(buf);
	free(gap);
}

Test(batch, msg_id_round_trip_and_bad_ids)
{
	char id[REPL_MSG_ID_BYTES_MAX];
	uint64_t a, b;
	batch_msg_id(17, 42, id);
	cr_assert_str_eq(id, "17-42");
	cr_assert_eq(batch_parse_msg_id(id, &a, &b), 0);
	cr_assert(a == 17 && b == 42);
	const char *bad[] = { "", "17", "17-", "-4", "5-4", "0-3", "1-2x", "x", NULL };
	for (int i = 0; bad[i]; i++)
		cr_assert_eq(batch_parse_msg_id(bad[i], &a, &b), -EINVAL, "%s", bad[i]);
	cr_assert_eq(batch_parse_msg_id(NULL, &a, &b), -EINVAL);
}

Test(batch, takeover_event_names_its_node)
{
	char body[256], node[REPL_NODE_BYTES_MAX];
	int n = batch_takeover_event(101, 1700000000000ULL, "standby-b", body, sizeof(body));
	cr_assert_gt(n, 0);
	cr_assert(batch_takeover_node(body, (size_t)n, node, sizeof(node)));
	cr_assert_str_eq(node, "standby-b");
	char *buf = NULL;
	size_t len = 0, cap = 0;
	uint8_t chain[LOGFILE_HASH_BYTES] = { 0 };
	cr_assert_eq(logfile_encode(101, body, (size_t)n, chain, &buf, &len, &cap), 0,
	             "a record body like any event");
	cr_assert_eq(batch_takeover_event(1, 1, "x", body, 8), -E2BIG);
	char other[] = { (char)0x81, (char)0xa4, 't', 'y', 'p', 'e', (char)0xa1, 'x' };
	cr_assert(!batch_takeover_node(other, sizeof(other), node, sizeof(node)));
	free(buf);
}
