/*
 * ledger.c - the domain rules (see ledger.h). Pure: no I/O, no clock, no
 * randomness. Hashing a verification code (BLAKE2b-256) is the only crypto.
 *
 * In-memory layout of ledger_t:
 *   accounts      array of ledger_account_t in opening order (index = item);
 *   by_number     open-addressing index (linear probing) number -> item;
 *   by_email      open-addressing index lower-cased email -> item;
 *   keys          ring buffer of idempotency keys, oldest at keys_head; at
 *                 most keys_max entries, the oldest evicted first (FIFO);
 *   by_key        open-addressing index key -> ring slot, with backward-shift
 *                 deletion so that eviction leaves no tombstones;
 *   sums          read model of sum_transactions: a map from a tagged date
 *                 (SUM_YEAR | year, SUM_MONTH | year*12+month-1, SUM_DAY |
 *                 days since 1970-01-01) to the total amount of transfers and
 *                 withdrawals in it; moved_total holds the all-time total.
 * An index slot holds item + 1; 0 is an empty slot. Every index is kept at
 * most half full, and its capacity is a power of two.
 *
 * Snapshot encoding (ledger_pack / ledger_unpack), one msgpack map:
 *   "v"         uint   LEDGER_SNAPSHOT_VERSION (1)
 *   "last_seq"  uint, "last_ts" int (ms), "moved" int (all-time sum total)
 *   "accounts"  array, in opening order, of [number uint, email str,
 *               pwhash str, code_hash bin(32), balance int, opened_at int,
 *               last_activity int (0 = none), verified bool]
 *   "keys"      array, oldest first, of [key bin(1..64), op uint, seq uint,
 *               account uint, balance int, fp bin(16)]
 *   "sums"      array of [tag uint, total int] (tags as described above)
 * Anything missing, mistyped, duplicated or out of range makes the whole
 * snapshot invalid (-EINVAL); total_withdrawn is derived from the balances.
 *
 * Totals saturate at INT64_MAX (sum_transactions only); balances cannot
 * overflow: their sum is bounded by LEDGER_OPEN_BALANCE * accounts.
 */
#include "ledger.h"
#include "msg.h"
#include "request.h"

#include <assert.h>
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define LEDGER_INDEX_CAP_MIN 64u
#define LEDGER_ACCOUNTS_CAP_MIN 64u
#define LEDGER_KEYS_CAP_MIN 1024u
#define LEDGER_ACCOUNT_MIN 1000000000000000ULL  /* 10^15: 16 digits */
#define LEDGER_ACCOUNT_LIMIT 10000000000000000ULL /* 10^16 */
#define LEDGER_ITEMS_MAX (UINT32_MAX / 4)
#define SUM_YEAR (1ULL << 56)
#define SUM_MONTH (2ULL << 56)
#define SUM_DAY (3ULL << 56)

typedef struct {
	uint32_t *slots; /* item + 1; 0 = empty */
	uint32_t mask;   /* capacity - 1 */
	uint32_t used;
} ledger_index_t;

typedef struct {
	ledger_key_entry_t entry;
	uint8_t len;
	char key[LEDGER_KEY_BYTES_MAX];
} ledger_key_rec_t;

typedef struct {
	uint64_t *tags; /* 0 = empty */
	int64_t *totals;
	uint32_t mask;
	uint32_t used;
} ledger_sums_t;

struct ledger {
	ledger_account_t *accounts;
	uint32_t accounts_n, accounts_cap;
	ledger_index_t by_number, by_email, by_key;
	ledger_key_rec_t *keys;
	uint32_t keys_head, keys_n, keys_cap, keys_max;
	ledger_sums_t sums;
	int64_t moved_total;
	uint64_t last_seq;
	int64_t last_ts;
	int64_t total_balance;
	int64_t total_withdrawn;
};

typedef uint64_t (*ledger_item_hash_fn)(const ledger_t *l, uint32_t item);

/* ---- hashing ---- */

static uint64_t ledger_mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static char ledger_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* FNV-1a over the bytes, lower-cased when fold is set, then mixed. */
static uint64_t ledger_hash_bytes(const char *s, size_t n, bool fold)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= (uint8_t)(fold ? ledger_lower(s[i]) : s[i]);
		h *= 0x100000001b3ULL;
	}
	return ledger_mix64(h ^ n);
}

static uint64_t ledger_hash_number(const ledger_t *l, uint32_t item)
{
	return ledger_mix64(l->accounts[item].number);
}

static uint64_t ledger_hash_email(const ledger_t *l, uint32_t item)
{
	const char *e = l->accounts[item].email;
	return ledger_hash_bytes(e, strlen(e), false);
}

static uint64_t ledger_hash_key(const ledger_t *l, uint32_t slot)
{
	return ledger_hash_bytes(l->keys[slot].key, l->keys[slot].len, false);
}

/* ---- open-addressing index ---- */

static void ledger_index_put(ledger_index_t *ix, uint64_t hash, uint32_t item)
{
	uint32_t i = (uint32_t)hash & ix->mask;
	while (ix->slots[i] != 0)
		i = (i + 1) & ix->mask;
	ix->slots[i] = item + 1;
	ix->used++;
}

/* Makes room for one more item, rehashing into a larger table if needed. */
static int ledger_index_reserve(const ledger_t *l, ledger_index_t *ix, ledger_item_hash_fn hash)
{
	uint32_t cap = ix->slots ? ix->mask + 1 : 0;
	if ((uint64_t)(ix->used + 1) * 2 <= cap)
		return 0;
	uint32_t ncap = cap ? cap * 2 : LEDGER_INDEX_CAP_MIN;
	if (ncap <= cap)
		return -ENOMEM;
	uint32_t *slots = calloc(ncap, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	ledger_index_t nix = { .slots = slots, .mask = ncap - 1, .used = 0 };
	for (uint32_t i = 0; i < cap; i++)
		if (ix->slots[i] != 0)
			ledger_index_put(&nix, hash(l, ix->slots[i] - 1), ix->slots[i] - 1);
	assert(nix.used == ix->used);
	free(ix->slots);
	*ix = nix;
	return 0;
}

/* Removes slot pos, shifting later entries of its probe run back. */
static void ledger_index_delete(const ledger_t *l, ledger_index_t *ix, uint32_t pos,
				ledger_item_hash_fn hash)
{
	uint32_t i = pos, j = pos;
	for (;;) {
		j = (j + 1) & ix->mask;
		if (ix->slots[j] == 0)
			break;
		uint32_t k = (uint32_t)hash(l, ix->slots[j] - 1) & ix->mask;
		bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
		if (!stays) {
			ix->slots[i] = ix->slots[j];
			i = j;
		}
	}
	ix->slots[i] = 0;
	ix->used--;
}

/* ---- lookups ---- */

static int64_t ledger_find_item(const ledger_t *l, uint64_t number)
{
	if (!l->by_number.slots)
		return -1;
	const ledger_index_t *ix = &l->by_number;
	for (uint32_t i = (uint32_t)ledger_mix64(number) & ix->mask; ix->slots[i];
	     i = (i + 1) & ix->mask)
		if (l->accounts[ix->slots[i] - 1].number == number)
			return ix->slots[i] - 1;
	return -1;
}

const ledger_account_t *ledger_find(const ledger_t *l, uint64_t number)
{
	assert(l);
	int64_t item = ledger_find_item(l, number);
	return item < 0 ? NULL : &l->accounts[item];
}

static bool ledger_email_eq(const char *stored, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (stored[i] == '\0' || stored[i] != ledger_lower(s[i]))
			return false;
	return stored[n] == '\0';
}

const ledger_account_t *ledger_find_email(const ledger_t *l, const char *email, size_t n)
{
	assert(l && (email || n == 0));
	const ledger_index_t *ix = &l->by_email;
	if (!ix->slots)
		return NULL;
	for (uint32_t i = (uint32_t)ledger_hash_bytes(email, n, true) & ix->mask; ix->slots[i];
	     i = (i + 1) & ix->mask) {
		const ledger_account_t *a = &l->accounts[ix->slots[i] - 1];
		if (ledger_email_eq(a->email, email, n))
			return a;
	}
	return NULL;
}

/* The by_key slot position holding key, or -1. */
static int64_t ledger_find_key_pos(const ledger_t *l, const char *key, size_t n)
{
	const ledger_index_t *ix = &l->by_key;
	if (!ix->slots || n == 0 || n > LEDGER_KEY_BYTES_MAX)
		return -1;
	for (uint32_t i = (uint32_t)ledger_hash_bytes(key, n, false) & ix->mask; ix->slots[i];
	     i = (i + 1) & ix->mask) {
		const ledger_key_rec_t *r = &l->keys[ix->slots[i] - 1];
		if (r->len == n && memcmp(r->key, key, n) == 0)
			return i;
	}
	return -1;
}

const ledger_key_entry_t *ledger_find_key(const ledger_t *l, const char *key, size_t n)
{
	assert(l && (key || n == 0));
	int64_t pos = ledger_find_key_pos(l, key, n);
	return pos < 0 ? NULL : &l->keys[l->by_key.slots[pos] - 1].entry;
}

/* ---- life cycle ---- */

ledger_t *ledger_new(void)
{
	ledger_t *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->keys_max = LEDGER_KEYS_MAX;
	return l;
}

void ledger_set_keys_max(ledger_t *l, size_t keys_max)
{
	assert(l && l->keys_n == 0 && l->keys_cap == 0);
	assert(keys_max >= 1 && keys_max <= LEDGER_KEYS_MAX);
	l->keys_max = (uint32_t)keys_max;
}

void ledger_free(ledger_t *l)
{
	if (!l)
		return;
	for (uint32_t i = 0; i < l->accounts_n; i++) {
		free(l->accounts[i].email);
		free(l->accounts[i].pwhash);
	}
	free(l->accounts);
	free(l->by_number.slots);
	free(l->by_email.slots);
	free(l->by_key.slots);
	free(l->keys);
	free(l->sums.tags);
	free(l->sums.totals);
	free(l);
}

/* ---- names ---- */

static const char *const ledger_err_names[] = {
	[LEDGER_OK] = "ok",
	[LEDGER_E_BAD_REQUEST] = "bad_request",
	[LEDGER_E_UNKNOWN_OP] = "unknown_op",
	[LEDGER_E_NOT_FOUND] = "not_found",
	[LEDGER_E_ALREADY_EXISTS] = "already_exists",
	[LEDGER_E_ALREADY_VERIFIED] = "already_verified",
	[LEDGER_E_WRONG_CODE] = "wrong_code",
	[LEDGER_E_NOT_VERIFIED] = "not_verified",
	[LEDGER_E_INSUFFICIENT_FUNDS] = "insufficient_funds",
	[LEDGER_E_INVALID_AMOUNT] = "invalid_amount",
	[LEDGER_E_SAME_ACCOUNT] = "same_account",
	[LEDGER_E_KEY_CONFLICT] = "key_conflict",
	[LEDGER_E_AUTH_FAILED] = "auth_failed",
	[LEDGER_E_UNAVAILABLE] = "unavailable",
	[LEDGER_E_OVERLOADED] = "overloaded",
	[LEDGER_E_INTERNAL] = "internal",
	[LEDGER_DUPLICATE] = "duplicate",
};

const char *ledger_err_name(ledger_err_t e)
{
	if ((unsigned)e >= sizeof(ledger_err_names) / sizeof(ledger_err_names[0]))
		return "internal";
	return ledger_err_names[e];
}

static const char *const ledger_event_names[] = {
	[LEDGER_EV_ACCOUNT_OPENED] = "account_opened",
	[LEDGER_EV_ACCOUNT_VERIFIED] = "account_verified",
	[LEDGER_EV_CODE_REISSUED] = "code_reissued",
	[LEDGER_EV_MONEY_TRANSFERRED] = "money_transferred",
	[LEDGER_EV_MONEY_WITHDRAWN] = "money_withdrawn",
};
#define LEDGER_EVENT_NAMES_N (sizeof(ledger_event_names) / sizeof(ledger_event_names[0]))

const char *ledger_event_type_name(ledger_event_type_t t)
{
	if ((unsigned)t == 0 || (unsigned)t >= LEDGER_EVENT_NAMES_N)
		return NULL;
	return ledger_event_names[t];
}

ledger_event_type_t ledger_event_type_parse(const char *s, size_t n)
{
	for (unsigned t = 1; t < LEDGER_EVENT_NAMES_N; t++)
		if (strlen(ledger_event_names[t]) == n && memcmp(ledger_event_names[t], s, n) == 0)
			return (ledger_event_type_t)t;
	return 0;
}

/* ---- account numbers ---- */

void ledger_account_format(uint64_t number, char buf[LEDGER_ACCOUNT_DIGITS + 1])
{
	assert(number >= LEDGER_ACCOUNT_MIN && number < LEDGER_ACCOUNT_LIMIT);
	for (int i = LEDGER_ACCOUNT_DIGITS - 1; i >= 0; i--) {
		buf[i] = (char)('0' + number % 10);
		number /= 10;
	}
	buf[LEDGER_ACCOUNT_DIGITS] = '\0';
}

bool ledger_account_parse(const char *s, size_t n, uint64_t *number)
{
	if (n != LEDGER_ACCOUNT_DIGITS || s[0] < '1' || s[0] > '9')
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*number = v;
	return true;
}

static bool ledger_number_ok(uint64_t number)
{
	return number >= LEDGER_ACCOUNT_MIN && number < LEDGER_ACCOUNT_LIMIT;
}

/* ---- civil dates (H. Hinnant's algorithms, proleptic Gregorian, UTC) ---- */

static int64_t ledger_days_from_civil(int64_t y, int64_t m, int64_t d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void ledger_civil_from_days(int64_t z, int64_t *y, int64_t *m, int64_t *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = yoe + era * 400 + (*m <= 2);
}

static int64_t ledger_days_in_month(int64_t y, int64_t m)
{
	static const int8_t days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return days[m - 1] + (m == 2 && leap);
}

/* ---- read model of sum_transactions ---- */

static int64_t ledger_sums_get(const ledger_sums_t *s, uint64_t tag)
{
	if (!s->tags)
		return 0;
	for (uint32_t i = (uint32_t)ledger_mix64(tag) & s->mask; s->tags[i]; i = (i + 1) & s->mask)
		if (s->tags[i] == tag)
			return s->totals[i];
	return 0;
}

static int64_t ledger_add_sat(int64_t a, int64_t b)
{
	assert(a >= 0 && b >= 0);
	return a > INT64_MAX - b ? INT64_MAX : a + b;
}

static void ledger_sums_add(ledger_sums_t *s, uint64_t tag, int64_t amount)
{
	uint32_t i = (uint32_t)ledger_mix64(tag) & s->mask;
	while (s->tags[i] && s->tags[i] != tag)
		i = (i + 1) & s->mask;
	if (!s->tags[i]) {
		s->tags[i] = tag;
		s->totals[i] = 0;
		s->used++;
	}
	s->totals[i] = ledger_add_sat(s->totals[i], amount);
}

/* Makes room for three more dates (one event adds at most a year, month, day). */
static int ledger_sums_reserve(ledger_sums_t *s)
{
	uint32_t cap = s->tags ? s->mask + 1 : 0;
	if ((uint64_t)(s->used + 3) * 2 <= cap)
		return 0;
	uint32_t ncap = cap ? cap * 2 : LEDGER_INDEX_CAP_MIN;
	if (ncap <= cap)
		return -ENOMEM;
	ledger_sums_t n = { .mask = ncap - 1 };
	n.tags = calloc(ncap, sizeof(*n.tags));
	n.totals = calloc(ncap, sizeof(*n.totals));
	if (!n.tags || !n.totals) {
		free(n.tags);
		free(n.totals);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < cap; i++)
		if (s->tags[i])
			ledger_sums_add(&n, s->tags[i], s->totals[i]);
	free(s->tags);
	free(s->totals);
	*s = n;
	return 0;
}

static void ledger_sums_record(ledger_t *l, int64_t ts_ms, int64_t amount)
{
	assert(ts_ms >= 0 && amount > 0);
	int64_t days = ts_ms / LEDGER_DAY_MS, y, m, d;
	ledger_civil_from_days(days, &y, &m, &d);
	ledger_sums_add(&l->sums, SUM_YEAR | (uint64_t)y, amount);
	ledger_sums_add(&l->sums, SUM_MONTH | (uint64_t)(y * 12 + m - 1), amount);
	ledger_sums_add(&l->sums, SUM_DAY | (uint64_t)days, amount);
	l->moved_total = ledger_add_sat(l->moved_total, amount);
}

int64_t ledger_sum_transactions(const ledger_t *l, int64_t year, int64_t month, int64_t day)
{
	assert(l && year >= 0 && month >= 0 && month <= 12 && day >= 0 && day <= 31);
	assert((month == 0 || year > 0) && (day == 0 || month > 0));
	if (year == 0)
		return l->moved_total;
	if (year < 1970 || year > 1000000)
		return 0; /* no event before the epoch; the tags hold years far beyond */
	if (month == 0)
		return ledger_sums_get(&l->sums, SUM_YEAR | (uint64_t)year);
	if (day == 0)
		return ledger_sums_get(&l->sums, SUM_MONTH | (uint64_t)(year * 12 + month - 1));
	if (day > ledger_days_in_month(year, month))
		return 0;
	int64_t days = ledger_days_from_civil(year, month, day);
	return ledger_sums_get(&l->sums, SUM_DAY | (uint64_t)days);
}

uint64_t ledger_inactive_users(const ledger_t *l, int64_t days, int64_t now_ms)
{
	assert(l && days >= 0);
	int64_t since;
	if (days > (now_ms - INT64_MIN / 2) / LEDGER_DAY_MS)
		since = INT64_MIN;
	else
		since = now_ms - days * LEDGER_DAY_MS;
	uint64_t n = 0;
	for (uint32_t i = 0; i < l->accounts_n; i++) {
		int64_t last = l->accounts[i].last_activity_ms;
		if (last == 0 || last < since)
			n++;
	}
	return n;
}

/* ---- totals ---- */

uint64_t ledger_last_seq(const ledger_t *l)
{
	return l->last_seq;
}

int64_t ledger_last_ts(const ledger_t *l)
{
	return l->last_ts;
}

size_t ledger_account_count(const ledger_t *l)
{
	return l->accounts_n;
}

int64_t ledger_total_balance(const ledger_t *l)
{
	return l->total_balance;
}

int64_t ledger_total_withdrawn(const ledger_t *l)
{
	return l->total_withdrawn;
}

int ledger_each_account(const ledger_t *l, int (*cb)(const ledger_account_t *a, void *arg),
			void *arg)
{
	assert(l && cb);
	for (uint32_t i = 0; i < l->accounts_n; i++) {
		int rc = cb(&l->accounts[i], arg);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int ledger_each_key(const ledger_t *l,
		    int (*cb)(const char *key, size_t n, const ledger_key_entry_t *e, void *arg),
		    void *arg)
{
	assert(l && cb);
	for (uint32_t i = 0; i < l->keys_n; i++) {
		const ledger_key_rec_t *r = &l->keys[(l->keys_head + i) % l->keys_cap];
		int rc = cb(r->key, r->len, &r->entry, arg);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* ---- checking commands ---- */

static ledger_err_t ledger_check_key(const ledger_t *l, const ledger_cmd_t *cmd,
				     ledger_key_entry_t *prior)
{
	const ledger_key_entry_t *e = ledger_find_key(l, cmd->key, cmd->key_len);
	if (!e)
		return LEDGER_OK;
	if (e->op != cmd->op || sodium_memcmp(e->fp, cmd->fp, LEDGER_FP_BYTES) != 0)
		return LEDGER_E_KEY_CONFLICT;
	if (prior)
		*prior = *e;
	return LEDGER_DUPLICATE;
}

static ledger_err_t ledger_check_verify(const ledger_t *l, const ledger_cmd_t *cmd)
{
	const ledger_account_t *a = cmd->account_valid ? ledger_find(l, cmd->account) : NULL;
	if (!a)
		return LEDGER_E_NOT_FOUND;
	if (a->verified)
		return LEDGER_E_ALREADY_VERIFIED;
	uint8_t h[LEDGER_CODE_HASH_BYTES];
	crypto_generichash(h, sizeof(h), (const unsigned char *)cmd->code, cmd->code_len, NULL, 0);
	if (sodium_memcmp(h, a->code_hash, sizeof(h)) != 0)
		return LEDGER_E_WRONG_CODE;
	return LEDGER_OK;
}

static ledger_err_t ledger_check_transfer(const ledger_t *l, const ledger_cmd_t *cmd)
{
	if (cmd->amount < 1 || cmd->amount > LEDGER_AMOUNT_MAX)
		return LEDGER_E_INVALID_AMOUNT;
	if (cmd->account_valid == cmd->to_valid && cmd->account == cmd->to)
		return LEDGER_E_SAME_ACCOUNT;
	const ledger_account_t *from = cmd->account_valid ? ledger_find(l, cmd->account) : NULL;
	if (!from)
		return LEDGER_E_NOT_FOUND;
	const ledger_account_t *to = cmd->to_valid ? ledger_find(l, cmd->to) : NULL;
	if (!to)
		return LEDGER_E_NOT_FOUND;
	if (!from->verified || !to->verified)
		return LEDGER_E_NOT_VERIFIED;
	if (from->balance < cmd->amount)
		return LEDGER_E_INSUFFICIENT_FUNDS;
	return LEDGER_OK;
}

static ledger_err_t ledger_check_withdraw(const ledger_t *l, const ledger_cmd_t *cmd)
{
	if (cmd->amount < 1 || cmd->amount > LEDGER_AMOUNT_MAX)
		return LEDGER_E_INVALID_AMOUNT;
	const ledger_account_t *a = cmd->account_valid ? ledger_find(l, cmd->account) : NULL;
	if (!a)
		return LEDGER_E_NOT_FOUND;
	if (!a->verified)
		return LEDGER_E_NOT_VERIFIED;
	if (a->balance < cmd->amount)
		return LEDGER_E_INSUFFICIENT_FUNDS;
	return LEDGER_OK;
}

static ledger_err_t ledger_check_rules(const ledger_t *l, const ledger_cmd_t *cmd)
{
	const ledger_account_t *a = cmd->account_valid ? ledger_find(l, cmd->account) : NULL;
	switch (cmd->op) {
	case LEDGER_OP_OPEN_ACCOUNT:
		assert(cmd->email_len <= LEDGER_EMAIL_BYTES_MAX);
		return ledger_find_email(l, cmd->email, cmd->email_len) ? LEDGER_E_ALREADY_EXISTS
									 : LEDGER_OK;
	case LEDGER_OP_VERIFY_ACCOUNT:
		return ledger_check_verify(l, cmd);
	case LEDGER_OP_REISSUE_CODE:
		if (!a)
			return LEDGER_E_NOT_FOUND;
		return a->verified ? LEDGER_E_ALREADY_VERIFIED : LEDGER_OK;
	case LEDGER_OP_TRANSFER:
		return ledger_check_transfer(l, cmd);
	case LEDGER_OP_WITHDRAW:
		return ledger_check_withdraw(l, cmd);
	case LEDGER_OP_GET_ACCOUNT:
		return a ? LEDGER_OK : LEDGER_E_NOT_FOUND;
	case LEDGER_OP_AUTHENTICATE:
		return a ? LEDGER_OK : LEDGER_E_AUTH_FAILED;
	case LEDGER_OP_NONE:
		return LEDGER_E_UNKNOWN_OP;
	default:
		return LEDGER_OK;
	}
}

ledger_err_t ledger_check(const ledger_t *l, const ledger_cmd_t *cmd, ledger_key_entry_t *prior)
{
	assert(l && cmd);
	bool command = cmd->op >= LEDGER_OP_OPEN_ACCOUNT && cmd->op <= LEDGER_OP_WITHDRAW;
	if (command && cmd->has_key) {
		assert(cmd->key && cmd->key_len >= 1 && cmd->key_len <= LEDGER_KEY_BYTES_MAX);
		ledger_err_t e = ledger_check_key(l, cmd, prior);
		if (e != LEDGER_OK)
			return e;
	}
	return ledger_check_rules(l, cmd);
}

/* ---- checking events ---- */

static ledger_err_t ledger_check_opened(const ledger_t *l, const ledger_event_t *ev)
{
	char lower[LEDGER_EMAIL_BYTES_MAX + 1];
	size_t n = strnlen(ev->email, sizeof(ev->email));
	if (!ledger_number_ok(ev->account) || n == sizeof(ev->email))
		return LEDGER_E_BAD_REQUEST;
	if (!request_email_valid(ev->email, n, lower) || strcmp(lower, ev->email) != 0)
		return LEDGER_E_BAD_REQUEST;
	if (ev->amount != LEDGER_OPEN_BALANCE)
		return LEDGER_E_INVALID_AMOUNT;
	if (memchr(ev->pwhash, '\0', sizeof(ev->pwhash)) == NULL || ev->pwhash[0] == '\0')
		return LEDGER_E_BAD_REQUEST;
	if (ledger_find(l, ev->account) || ledger_find_email(l, ev->email, n))
		return LEDGER_E_ALREADY_EXISTS;
	return LEDGER_OK;
}

static ledger_err_t ledger_check_move(const ledger_t *l, const ledger_event_t *ev)
{
	if (ev->amount < 1 || ev->amount > LEDGER_AMOUNT_MAX)
		return LEDGER_E_INVALID_AMOUNT;
	bool transfer = ev->type == LEDGER_EV_MONEY_TRANSFERRED;
	if (transfer && ev->account == ev->to)
		return LEDGER_E_SAME_ACCOUNT;
	const ledger_account_t *from = ledger_find(l, ev->account);
	const ledger_account_t *to = transfer ? ledger_find(l, ev->to) : NULL;
	if (!from || (transfer && !to))
		return LEDGER_E_NOT_FOUND;
	if (!from->verified || (transfer && !to->verified))
		return LEDGER_E_NOT_VERIFIED;
	if (from->balance < ev->amount)
		return LEDGER_E_INSUFFICIENT_FUNDS;
	if (ev->has_balance && ev->balance != from->balance - ev->amount)
		return LEDGER_E_BAD_REQUEST; /* the recorded balance after is wrong */
	return LEDGER_OK;
}

static ledger_err_t ledger_check_event_rules(const ledger_t *l, const ledger_event_t *ev)
{
	const ledger_account_t *a;
	switch (ev->type) {
	case LEDGER_EV_ACCOUNT_OPENED:
		return ledger_check_opened(l, ev);
	case LEDGER_EV_ACCOUNT_VERIFIED:
	case LEDGER_EV_CODE_REISSUED:
		a = ledger_find(l, ev->account);
		if (!a)
			return LEDGER_E_NOT_FOUND;
		return a->verified ? LEDGER_E_ALREADY_VERIFIED : LEDGER_OK;
	case LEDGER_EV_MONEY_TRANSFERRED:
	case LEDGER_EV_MONEY_WITHDRAWN:
		return ledger_check_move(l, ev);
	default:
		return LEDGER_E_BAD_REQUEST;
	}
}

ledger_err_t ledger_check_event(const ledger_t *l, const ledger_event_t *ev)
{
	assert(l && ev);
	if (ev->seq != l->last_seq + 1 || ev->ts_ms < l->last_ts)
		return LEDGER_E_BAD_REQUEST;
	if (ev->has_key) {
		if (ev->key_len < 1 || ev->key_len > LEDGER_KEY_BYTES_MAX)
			return LEDGER_E_BAD_REQUEST;
		if (ledger_find_key(l, ev->key, ev->key_len))
			return LEDGER_E_KEY_CONFLICT;
	}
	return ledger_check_event_rules(l, ev);
}

/* ---- applying events ---- */

static ledger_op_t ledger_op_of_event(ledger_event_type_t t)
{
	switch (t) {
	case LEDGER_EV_ACCOUNT_OPENED: return LEDGER_OP_OPEN_ACCOUNT;
	case LEDGER_EV_ACCOUNT_VERIFIED: return LEDGER_OP_VERIFY_ACCOUNT;
	case LEDGER_EV_CODE_REISSUED: return LEDGER_OP_REISSUE_CODE;
	case LEDGER_EV_MONEY_TRANSFERRED: return LEDGER_OP_TRANSFER;
	case LEDGER_EV_MONEY_WITHDRAWN: return LEDGER_OP_WITHDRAW;
	}
	return LEDGER_OP_NONE;
}

/* Makes room for one more key, evicting the oldest when keys_max are held. */
static int ledger_keys_reserve(ledger_t *l)
{
	int rc = ledger_index_reserve(l, &l->by_key, ledger_hash_key);
	if (rc < 0)
		return rc;
	if (l->keys_n < l->keys_cap || l->keys_cap == l->keys_max)
		return 0;
	assert(l->keys_head == 0); /* nothing is evicted before the ring is full */
	uint32_t ncap = l->keys_cap ? l->keys_cap * 2 : LEDGER_KEYS_CAP_MIN;
	if (ncap > l->keys_max)
		ncap = l->keys_max;
	ledger_key_rec_t *keys = realloc(l->keys, (size_t)ncap * sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	l->keys = keys;
	l->keys_cap = ncap;
	return 0;
}

static void ledger_keys_evict_oldest(ledger_t *l)
{
	assert(l->keys_n > 0);
	const ledger_key_rec_t *r = &l->keys[l->keys_head];
	int64_t pos = ledger_find_key_pos(l, r->key, r->len);
	assert(pos >= 0 && l->by_key.slots[pos] == l->keys_head + 1);
	ledger_index_delete(l, &l->by_key, (uint32_t)pos, ledger_hash_key);
	l->keys_head = (l->keys_head + 1) % l->keys_cap;
	l->keys_n--;
}

static void ledger_keys_add(ledger_t *l, const ledger_event_t *ev, int64_t balance)
{
	if (l->keys_n == l->keys_max)
		ledger_keys_evict_oldest(l);
	assert(l->keys_n < l->keys_cap);
	uint32_t slot = (l->keys_head + l->keys_n) % l->keys_cap;
	ledger_key_rec_t *r = &l->keys[slot];
	memset(r, 0, sizeof(*r));
	r->len = (uint8_t)ev->key_len;
	memcpy(r->key, ev->key, ev->key_len);
	r->entry.op = ledger_op_of_event(ev->type);
	r->entry.seq = ev->seq;
	r->entry.account = ev->type == LEDGER_EV_ACCOUNT_OPENED ? ev->account : 0;
	r->entry.balance = balance;
	memcpy(r->entry.fp, ev->fp, LEDGER_FP_BYTES);
	l->keys_n++;
	ledger_index_put(&l->by_key, ledger_hash_key(l, slot), slot);
}

static int ledger_accounts_reserve(ledger_t *l)
{
	if (l->accounts_n == LEDGER_ITEMS_MAX)
		return -ENOMEM;
	if (l->accounts_n < l->accounts_cap)
		return 0;
	uint32_t ncap = l->accounts_cap ? l->accounts_cap * 2 : LEDGER_ACCOUNTS_CAP_MIN;
	ledger_account_t *a = realloc(l->accounts, (size_t)ncap * sizeof(*a));
	if (!a)
		return -ENOMEM;
	l->accounts = a;
	l->accounts_cap = ncap;
	return 0;
}

/* Allocates everything the event needs, so that applying it cannot fail. */
static int ledger_reserve(ledger_t *l, const ledger_event_t *ev)
{
	int rc = 0;
	if (ev->type == LEDGER_EV_ACCOUNT_OPENED) {
		rc = ledger_accounts_reserve(l);
		if (rc == 0)
			rc = ledger_index_reserve(l, &l->by_number, ledger_hash_number);
		if (rc == 0)
			rc = ledger_index_reserve(l, &l->by_email, ledger_hash_email);
	}
	if (rc == 0 && ev->has_key)
		rc = ledger_keys_reserve(l);
	if (rc == 0 && (ev->type == LEDGER_EV_MONEY_TRANSFERRED ||
			ev->type == LEDGER_EV_MONEY_WITHDRAWN))
		rc = ledger_sums_reserve(&l->sums);
	return rc;
}

static int ledger_apply_opened(ledger_t *l, const ledger_event_t *ev)
{
	char *email = strdup(ev->email);
	char *pwhash = strdup(ev->pwhash);
	if (!email || !pwhash) {
		free(email);
		free(pwhash);
		return -ENOMEM;
	}
	uint32_t item = l->accounts_n++;
	ledger_account_t *a = &l->accounts[item];
	*a = (ledger_account_t){
		.number = ev->account,
		.balance = ev->amount,
		.opened_at_ms = ev->ts_ms,
		.email = email,
		.pwhash = pwhash,
	};
	memcpy(a->code_hash, ev->code_hash, LEDGER_CODE_HASH_BYTES);
	ledger_index_put(&l->by_number, ledger_hash_number(l, item), item);
	ledger_index_put(&l->by_email, ledger_hash_email(l, item), item);
	l->total_balance += ev->amount;
	return 0;
}

/* Applies a checked event whose memory is reserved; returns the balance after. */
static int64_t ledger_apply_rules(ledger_t *l, const ledger_event_t *ev)
{
	ledger_account_t *a = &l->accounts[ledger_find_item(l, ev->account)];
	ledger_account_t *to;
	switch (ev->type) {
	case LEDGER_EV_ACCOUNT_VERIFIED:
		a->verified = true;
		break;
	case LEDGER_EV_CODE_REISSUED:
		memcpy(a->code_hash, ev->code_hash, LEDGER_CODE_HASH_BYTES);
		break;
	case LEDGER_EV_MONEY_TRANSFERRED:
		to = &l->accounts[ledger_find_item(l, ev->to)];
		a->balance -= ev->amount;
		to->balance += ev->amount;
		a->last_activity_ms = to->last_activity_ms = ev->ts_ms;
		ledger_sums_record(l, ev->ts_ms, ev->amount);
		break;
	case LEDGER_EV_MONEY_WITHDRAWN:
		a->balance -= ev->amount;
		a->last_activity_ms = ev->ts_ms;
		l->total_balance -= ev->amount;
		l->total_withdrawn += ev->amount;
		ledger_sums_record(l, ev->ts_ms, ev->amount);
		break;
	default:
		break;
	}
	assert(a->balance >= 0);
	return a->balance;
}

int ledger_apply(ledger_t *l, const ledger_event_t *ev, ledger_result_t *out)
{
	assert(l && ev);
	assert(ledger_check_event(l, ev) == LEDGER_OK);
	int rc = ledger_reserve(l, ev);
	if (rc == 0 && ev->type == LEDGER_EV_ACCOUNT_OPENED)
		rc = ledger_apply_opened(l, ev);
	if (rc < 0)
		return rc;
	int64_t balance = ledger_apply_rules(l, ev);
	if (ev->has_key)
		ledger_keys_add(l, ev, balance);
	l->last_seq = ev->seq;
	l->last_ts = ev->ts_ms;
	assert(l->total_balance ==
	       (int64_t)l->accounts_n * LEDGER_OPEN_BALANCE - l->total_withdrawn);
	if (out)
		out->balance = balance;
	return 0;
}

/* ---- snapshot encoding (see the top of the file) ---- */

static void ledger_pack_account(msgpack_packer *pk, const ledger_account_t *a)
{
	msgpack_pack_array(pk, 8);
	msgpack_pack_uint64(pk, a->number);
	msg_pack_str(pk, a->email);
	msg_pack_str(pk, a->pwhash);
	msg_pack_binn(pk, a->code_hash, LEDGER_CODE_HASH_BYTES);
	msgpack_pack_int64(pk, a->balance);
	msgpack_pack_int64(pk, a->opened_at_ms);
	msgpack_pack_int64(pk, a->last_activity_ms);
	if (a->verified)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

void ledger_pack(const ledger_t *l, msgpack_packer *pk)
{
	assert(l && pk);
	msgpack_pack_map(pk, 7);
	msg_pack_kv_u64(pk, "v", LEDGER_SNAPSHOT_VERSION);
	msg_pack_kv_u64(pk, "last_seq", l->last_seq);
	msg_pack_kv_i64(pk, "last_ts", l->last_ts);
	msg_pack_str(pk, "accounts");
	msgpack_pack_array(pk, l->accounts_n);
	for (uint32_t i = 0; i < l->accounts_n; i++)
		ledger_pack_account(pk, &l->accounts[i]);
	msg_pack_str(pk, "keys");
	msgpack_pack_array(pk, l->keys_n);
	for (uint32_t i = 0; i < l->keys_n; i++) {
		const ledger_key_rec_t *r = &l->keys[(l->keys_head + i) % l->keys_cap];
		msgpack_pack_array(pk, 6);
		msg_pack_binn(pk, r->key, r->len);
		msgpack_pack_uint64(pk, (uint64_t)r->entry.op);
		msgpack_pack_uint64(pk, r->entry.seq);
		msgpack_pack_uint64(pk, r->entry.account);
		msgpack_pack_int64(pk, r->entry.balance);
		msg_pack_binn(pk, r->entry.fp, LEDGER_FP_BYTES);
	}
	msg_pack_str(pk, "sums");
	msgpack_pack_array(pk, l->sums.used);
	for (uint32_t i = 0; l->sums.tags && i <= l->sums.mask; i++) {
		if (!l->sums.tags[i])
			continue;
		msgpack_pack_array(pk, 2);
		msgpack_pack_uint64(pk, l->sums.tags[i]);
		msgpack_pack_int64(pk, l->sums.totals[i]);
	}
	msg_pack_kv_i64(pk, "moved", l->moved_total);
}

static bool ledger_obj_i64(const msgpack_object *o, int64_t min, int64_t *v)
{
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX)
		*v = (int64_t)o->via.u64;
	else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		*v = o->via.i64;
	else
		return false;
	return *v >= min;
}

static char *ledger_obj_strdup(const msgpack_object *o, size_t max)
{
	if (o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0 || o->via.str.size > max ||
	    memchr(o->via.str.ptr, '\0', o->via.str.size))
		return NULL;
	return strndup(o->via.str.ptr, o->via.str.size);
}

static int ledger_unpack_account(ledger_t *l, const msgpack_object *o)
{
	const msgpack_object *f = o->via.array.ptr;
	ledger_account_t a = { 0 };
	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 8 ||
	    f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || !ledger_number_ok(f[0].via.u64) ||
	    f[3].type != MSGPACK_OBJECT_BIN || f[3].via.bin.size != LEDGER_CODE_HASH_BYTES ||
	    !ledger_obj_i64(&f[4], 0, &a.balance) || !ledger_obj_i64(&f[5], 0, &a.opened_at_ms) ||
	    !ledger_obj_i64(&f[6], 0, &a.last_activity_ms) || f[7].type != MSGPACK_OBJECT_BOOLEAN)
		return -EINVAL;
	a.number = f[0].via.u64;
	a.verified = f[7].via.boolean;
	memcpy(a.code_hash, f[3].via.bin.ptr, LEDGER_CODE_HASH_BYTES);
	char lower[LEDGER_EMAIL_BYTES_MAX + 1];
	if (f[1].type != MSGPACK_OBJECT_STR ||
	    !request_email_valid(f[1].via.str.ptr, f[1].via.str.size, lower) ||
	    memcmp(lower, f[1].via.str.ptr, f[1].via.str.size) != 0 || ledger_find(l, a.number) ||
	    ledger_find_email(l, f[1].via.str.ptr, f[1].via.str.size))
		return -EINVAL;
	int rc = ledger_accounts_reserve(l);
	if (rc == 0)
		rc = ledger_index_reserve(l, &l->by_number, ledger_hash_number);
	if (rc == 0)
		rc = ledger_index_reserve(l, &l->by_email, ledger_hash_email);
	if (rc < 0)
		return rc;
	a.email = ledger_obj_strdup(&f[1], LEDGER_EMAIL_BYTES_MAX);
	a.pwhash = ledger_obj_strdup(&f[2], LEDGER_PWHASH_BYTES_MAX - 1);
	if (!a.email || !a.pwhash) {
		free(a.email);
		free(a.pwhash);
		return -EINVAL;
	}
	uint32_t item = l->accounts_n++;
	l->accounts[item] = a;
	ledger_index_put(&l->by_number, ledger_hash_number(l, item), item);
	ledger_index_put(&l->by_email, ledger_hash_email(l, item), item);
	l->total_balance += a.balance;
	return 0;
}

static int ledger_unpack_key(ledger_t *l, const msgpack_object *o)
{
	const msgpack_object *f = o->via.array.ptr;
	ledger_key_entry_t e = { 0 };
	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 6 ||
	    f[0].type != MSGPACK_OBJECT_BIN || f[0].via.bin.size < 1 ||
	    f[0].via.bin.size > LEDGER_KEY_BYTES_MAX ||
	    f[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[1].via.u64 > LEDGER_OP_WITHDRAW ||
	    !request_op_is_command((ledger_op_t)f[1].via.u64) ||
	    f[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    f[3].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    !ledger_obj_i64(&f[4], 0, &e.balance) ||
	    f[5].type != MSGPACK_OBJECT_BIN || f[5].via.bin.size != LEDGER_FP_BYTES ||
	    ledger_find_key(l, f[0].via.bin.ptr, f[0].via.bin.size))
		return -EINVAL;
	int rc = ledger_keys_reserve(l);
	if (rc < 0)
		return rc;
	if (l->keys_n == l->keys_max)
		ledger_keys_evict_oldest(l);
	uint32_t slot = (l->keys_head + l->keys_n) % l->keys_cap;
	ledger_key_rec_t *r = &l->keys[slot];
	memset(r, 0, sizeof(*r));
	r->len = (uint8_t)f[0].via.bin.size;
	memcpy(r->key, f[0].via.bin.ptr, r->len);
	r->entry.op = (ledger_op_t)f[1].via.u64;
	r->entry.seq = f[2].via.u64;
	r->entry.account = f[3].via.u64;
	r->entry.balance = e.balance;
	memcpy(r->entry.fp, f[5].via.bin.ptr, LEDGER_FP_BYTES);
	l->keys_n++;
	ledger_index_put(&l->by_key, ledger_hash_key(l, slot), slot);
	return 0;
}

static int ledger_unpack_sum(ledger_t *l, const msgpack_object *o)
{
	const msgpack_object *f = o->via.array.ptr;
	int64_t total;
	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 2 ||
	    f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[0].via.u64 < SUM_YEAR ||
	    f[0].via.u64 > (SUM_DAY | (SUM_YEAR - 1)) || !ledger_obj_i64(&f[1], 1, &total) ||
	    ledger_sums_get(&l->sums, f[0].via.u64) != 0)
		return -EINVAL;
	int rc = ledger_sums_reserve(&l->sums);
	if (rc == 0)
		ledger_sums_add(&l->sums, f[0].via.u64, total);
	return rc;
}

static int ledger_unpack_list(ledger_t *l, const msgpack_object *map, const char *name,
			      int (*item)(ledger_t *l, const msgpack_object *o))
{
	const msgpack_object *o = msg_get(map, name);
	if (!o || o->type != MSGPACK_OBJECT_ARRAY)
		return -EINVAL;
	for (uint32_t i = 0; i < o->via.array.size; i++) {
		int rc = item(l, &o->via.array.ptr[i]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int ledger_unpack(ledger_t *l, const msgpack_object *map)
{
	assert(l && map && l->last_seq == 0 && l->accounts_n == 0 && l->keys_n == 0);
	uint64_t v;
	if (msg_get_u64(map, "v", &v) < 0 || v != LEDGER_SNAPSHOT_VERSION ||
	    msg_get_u64(map, "last_seq", &l->last_seq) < 0 ||
	    msg_get_i64(map, "last_ts", &l->last_ts) < 0 || l->last_ts < 0 ||
	    msg_get_i64(map, "moved", &l->moved_total) < 0 || l->moved_total < 0)
		return -EINVAL;
	int rc = ledger_unpack_list(l, map, "accounts", ledger_unpack_account);
	if (rc == 0)
		rc = ledger_unpack_list(l, map, "keys", ledger_unpack_key);
	if (rc == 0)
		rc = ledger_unpack_list(l, map, "sums", ledger_unpack_sum);
	if (rc < 0)
		return rc;
	int64_t opened = (int64_t)l->accounts_n * LEDGER_OPEN_BALANCE;
	if (l->total_balance > opened)
		return -EINVAL;
	l->total_withdrawn = opened - l->total_balance;
	return 0;
}
