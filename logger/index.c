/*
 * index.c - the account index, DATA/account.idx, and its table file,
 * DATA/account.idx.tab (see index.h). All integers big-endian.
 *
 *   file header, INDEX_HEADER_BYTES (8) at offset 0:
 *     0  6  magic   "ESBIDX"
 *     6  2  version 1
 *   entry n (1, 2, ...), INDEX_ENTRY_BYTES (64) at 8 + (n - 1) * 64:
 *     0  8  seq           the event's seq (a transfer has two entries, from
 *                         then to, with the same seq)
 *     8  8  ts            its ts, ms since the epoch (signed)
 *     16 8  account       the account this entry belongs to
 *     24 8  counterparty  the other account of a transfer, 0 for none
 *     32 8  amount        signed: negative when money leaves the account
 *     40 8  balance       the account's balance after the event (signed)
 *     48 8  prev          the number of the account's previous entry, 0: none
 *     56 1  type          the event type (ledger_event_type_t: 1 opened,
 *                         4 transferred, 5 withdrawn)
 *     57 3  zero
 *     60 4  check         the first 4 bytes of SipHash-2-4 (libsodium
 *                         crypto_shorthash, all-zero key) of bytes 0..59
 *   An entry is valid when its check matches, its seq is not below the one
 *   before it, its prev is the account's last entry so far and its balance
 *   minus its amount is the account's balance before it. The file is never
 *   fsync'd: at start-up a partial last entry is cut, and so is everything
 *   from the first entry that is not valid, from the first whose seq is past
 *   the log's end, and the entries of the last seq left (derived again from
 *   the log, and compared: an index that does not derive from this log is
 *   rebuilt whole). Then every event after it is read from the log and
 *   folded in. A file that does not start with the header is rebuilt.
 *
 *   table file (written at a clean stop, removed once read):
 *     0  6  magic   "ESBIDT"
 *     6  2  version 1
 *     8  8  entries the number of entries it covers
 *     16 8  last_seq
 *     24 8  accounts K
 *     32 8  the index file's size when the table was written
 *     40 8  its modification time then (ns since the epoch)
 *     48 K * 24: account, last entry, balance
 *     .. 16 BLAKE2b-128 of all the bytes before it
 *   The index is fdatasync'd before the table is written, once, at the stop.
 *   The table is used when its hash matches and the index file has the same
 *   size and modification time (nothing wrote it since, not even a tool);
 *   otherwise every entry is scanned (about 1 GB/s from the page cache).
 *   A statement that finds a damaged entry answers internal and the table is
 *   not written at the stop, so the next start scans, cuts and rebuilds.
 */
#include "index.h"
#include "config.h"
#include "event.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define INDEX_MAGIC "ESBIDX"
#define INDEX_TABLE_MAGIC "ESBIDT"
#define INDEX_VERSION 1
#define INDEX_MAGIC_BYTES 6
#define INDEX_CHECK_AT 60
#define INDEX_TABLE_HEAD_BYTES 48
#define INDEX_TABLE_SLOT_BYTES 24
#define INDEX_TABLE_HASH_BYTES 16
#define INDEX_SLOTS_MIN 1024
#define INDEX_CATCHUP_EVENTS_MAX 4096
#define INDEX_CATCHUP_FLUSH_BYTES (4 * 1024 * 1024)

static void index_put64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t index_get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void index_check(const uint8_t *e, uint8_t out[4])
{
	static const uint8_t key[crypto_shorthash_KEYBYTES];
	uint8_t h[crypto_shorthash_BYTES];
	crypto_shorthash(h, e, INDEX_CHECK_AT, key);
	memcpy(out, h, 4);
}

static void index_encode(const index_entry_t *e, uint8_t out[INDEX_ENTRY_BYTES])
{
	index_put64(out, e->seq);
	index_put64(out + 8, (uint64_t)e->ts_ms);
	index_put64(out + 16, e->account);
	index_put64(out + 24, e->counterparty);
	index_put64(out + 32, (uint64_t)e->amount);
	index_put64(out + 40, (uint64_t)e->balance);
	index_put64(out + 48, e->prev);
	out[56] = e->type;
	out[57] = out[58] = out[59] = 0;
	index_check(out, out + INDEX_CHECK_AT);
}

/* Decodes one entry: 0 or -EBADMSG when its check fails. */
static int index_decode(const uint8_t in[INDEX_ENTRY_BYTES], index_entry_t *e)
{
	uint8_t c[4];
	index_check(in, c);
	if (memcmp(c, in + INDEX_CHECK_AT, 4) != 0)
		return -EBADMSG;
	e->seq = index_get64(in);
	e->ts_ms = (int64_t)index_get64(in + 8);
	e->account = index_get64(in + 16);
	e->counterparty = index_get64(in + 24);
	e->amount = (int64_t)index_get64(in + 32);
	e->balance = (int64_t)index_get64(in + 40);
	e->prev = index_get64(in + 48);
	e->type = in[56];
	return 0;
}

static off_t index_offset(uint64_t n)
{
	return (off_t)(INDEX_HEADER_BYTES + (n - 1) * INDEX_ENTRY_BYTES);
}

/* --- the account table: open addressing, linear probing ----------------- */

static size_t index_home(const index_t *ix, uint64_t account)
{
	return (size_t)((account * 0x9E3779B97F4A7C15ull) >> 17) & (ix->slots_cap - 1);
}

static index_slot_t *index_find(const index_t *ix, uint64_t account)
{
	if (!ix->slots)
		return NULL;
	for (size_t i = index_home(ix, account);; i = (i + 1) & (ix->slots_cap - 1)) {
		index_slot_t *s = &ix->slots[i];
		if (s->account == account)
			return s;
		if (s->account == 0)
			return NULL;
	}
}

static int index_grow(index_t *ix)
{
	size_t cap = ix->slots_cap ? ix->slots_cap * 2 : INDEX_SLOTS_MIN;
	index_slot_t *old = ix->slots;
	size_t old_cap = ix->slots_cap;
	ix->slots = calloc(cap, sizeof(*ix->slots));
	if (!ix->slots) {
		ix->slots = old;
		return -ENOMEM;
	}
	ix->slots_cap = cap;
	for (size_t i = 0; i < old_cap; i++) {
		if (old[i].account == 0)
			continue;
		size_t j = index_home(ix, old[i].account);
		while (ix->slots[j].account)
			j = (j + 1) & (cap - 1);
		ix->slots[j] = old[i];
	}
	free(old);
	return 0;
}

/* The account's slot, made when absent; NULL when out of memory. */
static index_slot_t *index_slot(index_t *ix, uint64_t account)
{
	assert(account != 0);
	index_slot_t *s = index_find(ix, account);
	if (s)
		return s;
	if ((ix->slots_used + 1) * 2 > ix->slots_cap && index_grow(ix) < 0)
		return NULL;
	size_t i = index_home(ix, account);
	while (ix->slots[i].account)
		i = (i + 1) & (ix->slots_cap - 1);
	ix->slots[i] = (index_slot_t){ .account = account };
	ix->slots_used++;
	return &ix->slots[i];
}

static void index_clear_table(index_t *ix)
{
	if (ix->slots)
		memset(ix->slots, 0, ix->slots_cap * sizeof(*ix->slots));
	ix->slots_used = 0;
}

bool index_lookup(const index_t *ix, uint64_t account, uint64_t *last, int64_t *balance)
{
	const index_slot_t *s = account ? index_find(ix, account) : NULL;
	if (!s || s->last == 0)
		return false;
	*last = s->last;
	*balance = s->balance;
	return true;
}

/* --- appending ----------------------------------------------------------- */

static int index_append(index_t *ix, uint64_t seq, int64_t ts_ms, uint8_t type,
                        uint64_t account, uint64_t counterparty, int64_t amount)
{
	index_slot_t *s = index_slot(ix, account);
	if (!s)
		return -ENOMEM;
	if (ix->buf_cap - ix->buf_len < INDEX_ENTRY_BYTES) {
		size_t cap = ix->buf_cap ? ix->buf_cap * 2 : 64 * INDEX_ENTRY_BYTES;
		char *b = realloc(ix->buf, cap);
		if (!b)
			return -ENOMEM;
		ix->buf = b;
		ix->buf_cap = cap;
	}
	index_entry_t e = { .seq = seq, .ts_ms = ts_ms, .account = account,
		            .counterparty = counterparty, .amount = amount,
		            .balance = s->balance + amount, .prev = s->last, .type = type };
	index_encode(&e, (uint8_t *)ix->buf + ix->buf_len);
	ix->buf_len += INDEX_ENTRY_BYTES;
	s->last = ++ix->entries;
	s->balance = e.balance;
	return 0;
}

static int index_fold(index_t *ix, const ledger_event_t *ev)
{
	uint8_t t = (uint8_t)ev->type;
	switch (ev->type) {
	case LEDGER_EV_ACCOUNT_OPENED:
		return index_append(ix, ev->seq, ev->ts_ms, t, ev->account, 0, ev->amount);
	case LEDGER_EV_MONEY_TRANSFERRED: {
		int r = index_append(ix, ev->seq, ev->ts_ms, t, ev->account, ev->to, -ev->amount);
		return r < 0 ? r : index_append(ix, ev->seq, ev->ts_ms, t, ev->to, ev->account,
		                                ev->amount);
	}
	case LEDGER_EV_MONEY_WITHDRAWN:
		return index_append(ix, ev->seq, ev->ts_ms, t, ev->account, 0, -ev->amount);
	default:
		return 0;
	}
}

int index_add(index_t *ix, uint64_t seq, const char *body, size_t len)
{
	assert(seq == ix->last_seq + 1);
	if (ix->broken)
		return -EIO;
	ledger_event_t ev;
	ix->last_seq = seq;
	if (event_decode_bytes(body, len, &ev) < 0 || ev.account == 0)
		return 0;
	ev.seq = seq;
	return index_fold(ix, &ev);
}

int index_flush(index_t *ix)
{
	if (ix->buf_len == 0)
		return 0;
	off_t at = index_offset(ix->written + 1);
	size_t done = 0;
	while (done < ix->buf_len) {
		ssize_t w = pwrite(ix->fd, ix->buf + done, ix->buf_len - done, at + (off_t)done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int err = w < 0 ? -errno : -EIO;
			(void)!ftruncate(ix->fd, at); /* whole entries only; tried again */
			if (ix->buf_len > INDEX_BUFFER_BYTES_MAX)
				ix->broken = true;
			return err;
		}
		done += (size_t)w;
	}
	ix->written = ix->entries;
	ix->buf_len = 0;
	return 0;
}

/* --- reading ------------------------------------------------------------- */

int index_read(const index_t *ix, uint64_t n, index_entry_t *out)
{
	if (n == 0 || n > ix->written)
		return -ERANGE;
	if (ix->map && (uint64_t)index_offset(n + 1) <= INDEX_MAP_BYTES_MAX)
		return index_decode(ix->map + index_offset(n), out);
	uint8_t b[INDEX_ENTRY_BYTES];
	ssize_t r;
	do
		r = pread(ix->fd, b, sizeof(b), index_offset(n));
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r != INDEX_ENTRY_BYTES)
		return -EBADMSG;
	return index_decode(b, out);
}

/* The walk's state: out is a ring of the oldest limit entries seen so far. */
typedef struct {
	const index_query_t *q;
	index_page_t *page;
	uint64_t pushed;
	bool have_closing;
} index_walker_t;

/* Entry e, which is before the period's end: 1 when the walk is done. */
static int index_walk_one(index_walker_t *w, const index_entry_t *e)
{
	index_page_t *p = w->page;
	if (!w->have_closing) {
		p->closing_balance = e->balance;
		w->have_closing = true;
	}
	if (e->ts_ms < w->q->since_ms) {
		p->opening_balance = e->balance;
		return 1;
	}
	p->opening_balance = e->balance - e->amount;
	if (e->seq > w->q->after_seq)
		p->out[w->pushed++ % w->q->limit] = *e;
	return 0;
}

/* Puts the ring's entries oldest first (the oldest was pushed last). */
static int index_walk_order(index_walker_t *w)
{
	size_t limit = w->q->limit;
	size_t n = w->pushed < limit ? (size_t)w->pushed : limit;
	index_entry_t *tmp = malloc((n ? n : 1) * sizeof(*tmp));
	if (!tmp)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		tmp[i] = w->page->out[(w->pushed - 1 - i) % limit];
	memcpy(w->page->out, tmp, n * sizeof(*tmp));
	free(tmp);
	w->page->n = n;
	w->page->more = w->pushed > limit;
	return 0;
}

int index_walk(const index_t *ix, uint64_t last, const index_query_t *q, index_page_t *page)
{
	assert(q->limit >= 1 && q->limit <= INDEX_PAGE_MAX);
	index_walker_t w = { .q = q, .page = page };
	page->n = 0;
	page->opening_balance = page->closing_balance = 0;
	for (uint64_t n = last; n != 0;) {
		index_entry_t e;
		int r = index_read(ix, n, &e);
		if (r < 0)
			return r;
		if (e.prev >= n)
			return -EBADMSG; /* a loop: never follow it */
		n = e.prev;
		if (e.ts_ms >= q->until_ms)
			continue;
		if (index_walk_one(&w, &e))
			break;
	}
	return index_walk_order(&w);
}

/* --- the table file ------------------------------------------------------ */

static int index_write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The index file's size and modification time (ns): 0 or -errno. */
static int index_file_stamp(int fd, uint64_t *size, uint64_t *mtime_ns)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	*size = (uint64_t)st.st_size;
	*mtime_ns = (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec;
	return 0;
}

/* The table file's bytes for the current table (malloc'd, *len set). */
static uint8_t *index_table_bytes(const index_t *ix, size_t *len)
{
	uint64_t size, mtime;
	if (index_file_stamp(ix->fd, &size, &mtime) < 0)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < ix->slots_cap; i++)
		k += ix->slots[i].last != 0;
	size_t n = INDEX_TABLE_HEAD_BYTES + k * INDEX_TABLE_SLOT_BYTES + INDEX_TABLE_HASH_BYTES;
	uint8_t *b = malloc(n), *p = b + INDEX_TABLE_HEAD_BYTES;
	if (!b)
		return NULL;
	memcpy(b, INDEX_TABLE_MAGIC, INDEX_MAGIC_BYTES);
	b[6] = 0;
	b[7] = INDEX_VERSION;
	index_put64(b + 8, ix->entries);
	index_put64(b + 16, ix->last_seq);
	index_put64(b + 24, k);
	index_put64(b + 32, size);
	index_put64(b + 40, mtime);
	for (size_t i = 0; i < ix->slots_cap; i++) {
		const index_slot_t *s = &ix->slots[i];
		if (s->last == 0)
			continue;
		index_put64(p, s->account);
		index_put64(p + 8, s->last);
		index_put64(p + 16, (uint64_t)s->balance);
		p += INDEX_TABLE_SLOT_BYTES;
	}
	crypto_generichash(p, INDEX_TABLE_HASH_BYTES, b, (size_t)(p - b), NULL, 0);
	*len = n;
	return b;
}

int index_save_table(index_t *ix)
{
	int r = index_flush(ix);
	if (r == 0 && fdatasync(ix->fd) < 0)
		r = -errno;
	if (r < 0)
		return r;
	size_t n;
	uint8_t *b = index_table_bytes(ix, &n);
	if (!b)
		return -ENOMEM;
	size_t tl = strlen(ix->table_path) + 5;
	char *tmp = malloc(tl);
	if (!tmp) {
		free(b);
		return -ENOMEM;
	}
	snprintf(tmp, tl, "%s.tmp", ix->table_path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	r = fd < 0 ? -errno : index_write_all(fd, b, n);
	if (fd >= 0 && close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, ix->table_path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	free(tmp);
	free(b);
	return r;
}

/* Reads the whole table file: its bytes, or NULL. */
static uint8_t *index_table_read(const index_t *ix, size_t *len)
{
	int fd = open(ix->table_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct stat st;
	uint8_t *b = NULL;
	if (fstat(fd, &st) == 0 && st.st_size >= INDEX_TABLE_HEAD_BYTES + INDEX_TABLE_HASH_BYTES)
		b = malloc((size_t)st.st_size);
	if (b && pread(fd, b, (size_t)st.st_size, 0) != st.st_size) {
		free(b);
		b = NULL;
	}
	close(fd);
	*len = b ? (size_t)st.st_size : 0;
	return b;
}

/* Loads the table file when it is valid and covers at most held entries. */
static bool index_table_load(index_t *ix, uint64_t held)
{
	size_t n;
	uint8_t *b = index_table_read(ix, &n), h[INDEX_TABLE_HASH_BYTES];
	if (!b)
		return false;
	uint64_t k = index_get64(b + 24), covered = index_get64(b + 8), size = 0, mtime = 0;
	bool ok = index_file_stamp(ix->fd, &size, &mtime) == 0 && index_get64(b + 32) == size &&
	          index_get64(b + 40) == mtime && memcmp(b, INDEX_TABLE_MAGIC, INDEX_MAGIC_BYTES) == 0 && b[7] == INDEX_VERSION &&
	          k <= (n - INDEX_TABLE_HEAD_BYTES) / INDEX_TABLE_SLOT_BYTES &&
	          n == INDEX_TABLE_HEAD_BYTES + k * INDEX_TABLE_SLOT_BYTES + INDEX_TABLE_HASH_BYTES &&
	          covered <= held;
	if (ok) {
		crypto_generichash(h, sizeof(h), b, n - sizeof(h), NULL, 0);
		ok = memcmp(h, b + n - sizeof(h), sizeof(h)) == 0;
	}
	for (uint64_t i = 0; ok && i < k; i++) {
		const uint8_t *p = b + INDEX_TABLE_HEAD_BYTES + i * INDEX_TABLE_SLOT_BYTES;
		index_slot_t *s = index_get64(p) ? index_slot(ix, index_get64(p)) : NULL;
		ok = s && index_get64(p + 8) <= covered;
		if (ok) {
			s->last = index_get64(p + 8);
			s->balance = (int64_t)index_get64(p + 16);
		}
	}
	if (ok) {
		ix->entries = ix->written = covered;
		ix->last_seq = index_get64(b + 16);
	} else {
		index_clear_table(ix);
	}
	free(b);
	return ok;
}

/* --- start-up: scan, cut, catch up --------------------------------------- */

/* Folds written entry n into the table: false when it is not valid there. */
static bool index_scan_one(index_t *ix, uint64_t n, const uint8_t *raw)
{
	index_entry_t e;
	if (index_decode(raw, &e) < 0 || e.seq < ix->last_seq || e.account == 0)
		return false;
	index_slot_t *s = index_slot(ix, e.account);
	if (!s || e.prev != s->last || e.balance - e.amount != s->balance)
		return false;
	s->last = n;
	s->balance = e.balance;
	ix->last_seq = e.seq;
	return true;
}

/* Scans entries entries + 1 .. held into the table; stops at the first one
 * not valid. Returns 0 or a negative errno. */
static int index_scan(index_t *ix, uint64_t held)
{
	uint8_t *b = malloc(INDEX_SCAN_ENTRIES_MAX * INDEX_ENTRY_BYTES);
	if (!b)
		return -ENOMEM;
	while (ix->entries < held) {
		uint64_t k = held - ix->entries;
		if (k > INDEX_SCAN_ENTRIES_MAX)
			k = INDEX_SCAN_ENTRIES_MAX;
		ssize_t r = pread(ix->fd, b, k * INDEX_ENTRY_BYTES, index_offset(ix->entries + 1));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		k = (uint64_t)r / INDEX_ENTRY_BYTES;
		uint64_t i = 0;
		while (i < k && index_scan_one(ix, ix->entries + 1, b + i * INDEX_ENTRY_BYTES)) {
			ix->entries++;
			i++;
		}
		if (i < k)
			break;
	}
	ix->written = ix->entries;
	free(b);
	return 0;
}

/* Drops the last entry, undoing it in the table: 0 or a negative errno. */
static int index_drop_last(index_t *ix, index_entry_t *dropped)
{
	int r = index_read(ix, ix->entries, dropped);
	if (r < 0)
		return r;
	index_slot_t *s = index_find(ix, dropped->account);
	if (!s || s->last != ix->entries)
		return -EBADMSG; /* a table that does not fit the file */
	s->last = dropped->prev;
	s->balance = dropped->balance - dropped->amount;
	ix->written = --ix->entries;
	return 0;
}

/* Drops the entries past the log's end and those of the last seq left; the
 * first of the latter is kept in *first (its number in *first_n, 0: none). */
static int index_cut_tail(index_t *ix, uint64_t log_last, index_entry_t *first,
                          uint64_t *first_n, index_report_t *rep)
{
	index_entry_t e = { 0 };
	uint64_t group_seq = 0;
	*first_n = 0;
	while (ix->entries > 0) {
		int r = index_read(ix, ix->entries, &e);
		if (r < 0)
			return r;
		if (e.seq <= log_last && group_seq == 0)
			group_seq = e.seq;
		if (e.seq <= log_last && e.seq != group_seq)
			break;
		if (e.seq == group_seq)
			*first_n = ix->entries;
		r = index_drop_last(ix, first);
		if (r < 0)
			return r;
		rep->cut_entries++;
	}
	ix->last_seq = ix->entries ? e.seq : 0;
	return 0;
}

typedef struct {
	index_t *ix;
	int err;
} index_catchup_t;

static int index_catchup_cb(uint64_t seq, const char *body, size_t len, void *arg)
{
	index_catchup_t *c = arg;
	c->err = index_add(c->ix, seq, body, len);
	if (c->err == 0 && c->ix->buf_len >= INDEX_CATCHUP_FLUSH_BYTES)
		c->err = index_flush(c->ix);
	return c->err != 0;
}

int index_catch_up(index_t *ix, const logfile_t *lf, index_report_t *rep)
{
	index_catchup_t c = { .ix = ix };
	while (ix->last_seq < lf->last_seq) {
		uint64_t from = ix->last_seq + 1;
		long n = logfile_read(lf, from, INDEX_CATCHUP_EVENTS_MAX, SIZE_MAX, index_catchup_cb,
		                      &c);
		if (c.err < 0)
			return c.err;
		if (n <= 0)
			return n < 0 ? (int)n : -EIO;
		rep->caught_up += (uint64_t)n;
	}
	return index_flush(ix);
}

static bool index_same(const index_entry_t *a, const index_entry_t *b)
{
	return a->seq == b->seq && a->ts_ms == b->ts_ms && a->account == b->account &&
	       a->counterparty == b->counterparty && a->amount == b->amount &&
	       a->balance == b->balance && a->prev == b->prev && a->type == b->type;
}

/* Empties the file to its header and the table. */
static int index_reset(index_t *ix, index_report_t *rep)
{
	static const uint8_t head[INDEX_HEADER_BYTES] = { 'E', 'S', 'B', 'I', 'D', 'X', 0,
		                                          INDEX_VERSION };
	index_clear_table(ix);
	ix->entries = ix->written = ix->last_seq = 0;
	ix->buf_len = 0;
	rep->created = true;
	if (ftruncate(ix->fd, 0) < 0)
		return -errno;
	ssize_t w = pwrite(ix->fd, head, sizeof(head), 0);
	return w == sizeof(head) ? 0 : w < 0 ? -errno : -EIO;
}

/* Opens the file; *held is the number of whole entries it holds (0 and
 * reset when its header is not an index's). */
static int index_open_file(index_t *ix, uint64_t *held, index_report_t *rep)
{
	ix->fd = open(ix->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (ix->fd < 0)
		return -errno;
	struct stat st;
	char head[INDEX_HEADER_BYTES];
	if (fstat(ix->fd, &st) < 0)
		return -errno;
	*held = 0;
	if (st.st_size < INDEX_HEADER_BYTES || pread(ix->fd, head, sizeof(head), 0) != sizeof(head) ||
	    memcmp(head, INDEX_MAGIC, INDEX_MAGIC_BYTES) != 0 || head[6] != 0 ||
	    head[7] != INDEX_VERSION)
		return index_reset(ix, rep);
	*held = ((uint64_t)st.st_size - INDEX_HEADER_BYTES) / INDEX_ENTRY_BYTES;
	return 0;
}

/* Loads or rebuilds the table, cuts what is not valid, catches up. */
static int index_recover(index_t *ix, const logfile_t *lf, index_report_t *rep)
{
	uint64_t held = 0, first_n = 0;
	index_entry_t first;
	int r = index_open_file(ix, &held, rep);
	if (r < 0)
		return r;
	rep->table_loaded = held > 0 && index_table_load(ix, held);
	r = index_scan(ix, held);
	rep->cut_entries += held - ix->entries;
	if (r == 0)
		r = index_cut_tail(ix, lf->last_seq, &first, &first_n, rep);
	if (r == 0 && ftruncate(ix->fd, index_offset(ix->entries + 1)) < 0)
		r = -errno;
	if (r == 0)
		r = index_catch_up(ix, lf, rep);
	index_entry_t again;
	if (r == -EBADMSG || (r == 0 && first_n != 0 && (index_read(ix, first_n, &again) < 0 ||
	                                                 !index_same(&first, &again)))) {
		r = index_reset(ix, rep); /* not derived from this log: rebuilt whole */
		rep->caught_up = 0;
		if (r == 0)
			r = index_catch_up(ix, lf, rep);
	}
	return r;
}

int index_open(index_t *ix, const char *dir, const logfile_t *lf, index_report_t *rep)
{
	memset(ix, 0, sizeof(*ix));
	memset(rep, 0, sizeof(*rep));
	ix->fd = -1;
	ix->path = config_path(dir, INDEX_FILE_NAME);
	ix->table_path = config_path(dir, INDEX_TABLE_NAME);
	int r = ix->path && ix->table_path ? index_grow(ix) : -ENOMEM;
	if (r == 0)
		r = index_recover(ix, lf, rep);
	if (r == 0)
		unlink(ix->table_path); /* from now on it would be stale */
	if (r < 0) {
		index_close(ix);
		return r;
	}
	void *m = mmap(NULL, INDEX_MAP_BYTES_MAX, PROT_READ, MAP_SHARED, ix->fd, 0);
	ix->map = m == MAP_FAILED ? NULL : m;
	return 0;
}

void index_close(index_t *ix)
{
	if (ix->map)
		munmap((void *)ix->map, INDEX_MAP_BYTES_MAX);
	if (ix->fd >= 0) {
		index_flush(ix);
		close(ix->fd);
	}
	free(ix->path);
	free(ix->table_path);
	free(ix->slots);
	free(ix->buf);
	memset(ix, 0, sizeof(*ix));
	ix->fd = -1;
}
