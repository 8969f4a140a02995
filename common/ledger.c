/*
 * ledger.c - the domain rules (see ledger.h). Pure: no I/O, no clock, no
 * randomness. Hashing a verification code (BLAKE2b-256) is the only crypto.
 *
 * In-memory layout of ledger_t (sized for millions of accounts: a lookup
 * touches one index cache line and, on a hit, one account):
 *   accounts      array of ledger_account_t in opening order (index = item);
 *                 an account's rec points into strings (its identity,
 *                 password hash and sealed email, packed: ledger_record.c);
 *   strings       arena of the accounts' strings: a list of chunks of at
 *                 least LEDGER_CHUNK_BYTES, filled in order and freed only
 *                 with the ledger (accounts are never removed), so a string
 *                 costs its bytes and its NUL, with no malloc header;
 *   by_number     open-addressing index (linear probing) number -> item;
 *   by_email      open-addressing index email identity -> item (ledger.h:
 *                 the lower-cased email of an old plain event, else the
 *                 hex of its keyed hash); an erased account leaves it;
 *   keys          ring buffer of idempotency keys, oldest at keys_head; at
 *                 most keys_max entries, the oldest evicted first (FIFO);
 *   by_key        open-addressing index key -> ring slot, with backward-shift
 *                 deletion so that eviction leaves no tombstones;
 *   sums          read model of sum_transactions: a map from a tagged date
 *                 (SUM_YEAR | year, SUM_MONTH | year*12+month-1, SUM_DAY |
 *                 days since 1970-01-01) to the total amount of transfers and
 *                 withdrawals in it; moved_total holds the all-time total.
 * An index slot (8 bytes) holds item + 1 (0 is an empty slot) and frag, the
 * low 32 bits of its key's 64-bit hash. The slot's home position is
 * frag & mask, so growing or deleting never rehashes a key, and a probe
 * compares frag before it reads the account or key record (a false match is
 * about 1 in 2^32 / capacity). Every index is kept at most half full, and
 * its capacity is a power of two. At a million sealed accounts the cost is
 * about 88 (account) + 2 * 16 (two indexes, 2^21 slots each) + the record
 * (a 32-byte email hash, 48 bytes of argon2id salt and hash, and the
 * sealed email: ~33 bytes + 16 of tag, its nonce derived, or only an 8-byte
 * reference when the ledger has a sealed store, as the resolver's has) =
 * ~210 bytes per account in the resolver; its key store index
 * (common/keystore.c) adds ~34.
 *
 * Snapshot encoding (ledger_pack / ledger_unpack), one msgpack map:
 *   "v"         uint   LEDGER_SNAPSHOT_VERSION (3; 2 and 1 still load)
 *   "last_seq"  uint, "last_ts" int (ms), "moved" int (all-time sum total)
 *   "pw_prefixes" array of str: the argon2id parameter strings
 *               ("$argon2id$v=19$m=65536,t=2,p=1$"), each once; before
 *               "accounts" (version 3 only)
 *   "accounts"  array, in opening order, of [number uint, identity, pwhash,
 *               code_hash bin(32), balance int, opened_at int,
 *               last_activity int (0 = none), verified bool, email_enc bin,
 *               opened_seq uint, erased bool, nonce_derived bool]:
 *               identity  a sealed account's keyed email hash as bin(32);
 *                         else str: the lower-cased email, "" when erased
 *               pwhash    bin(49): the number k (1..) of its parameter
 *                         string in "pw_prefixes", then the 16-byte salt
 *                         and the 32-byte hash (the string is that prefix,
 *                         then their Base64 without padding, joined by
 *                         "$"); or str: the string as given, when it is
 *                         not of that exact form
 *               email_enc the sealed email, without its nonce when
 *                         nonce_derived (the nonce is then
 *                         ledger_sealed_nonce(number, opened_seq)); empty
 *                         when plain or erased
 *               Version 2 wrote 11 fields: identities of sealed accounts as
 *               their 64 hex digits, every pwhash as its string, email_enc
 *               with its nonce. Version 1: the first 8 (plain emails,
 *               nothing erased). The bytes of a million accounts: 306 MB in
 *               version 2, about 30% less in version 3.
 *   "keys"      array, oldest first, of [key bin(1..64), op uint, seq uint,
 *               account uint, balance int, fp bin(16)]
 *   "sums"      array of [tag uint, total int] (tags as described above)
 * Anything missing, mistyped, duplicated or out of range makes the whole
 * snapshot invalid (-EINVAL); total_withdrawn is derived from the balances.
 * ledger_unpack sizes the arrays and indexes from the arrays' lengths once,
 * so that loading never rehashes.
 *
 * Totals saturate at INT64_MAX (sum_transactions only); balances cannot
 * overflow: their sum is bounded by LEDGER_OPEN_BALANCE * accounts.
 */
#include "ledger_impl.h"
#include "bigmem.h"
#include "msg.h"

#include <assert.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- hashing ---- */

static char ledger_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* n <= 8 bytes at s as a word, zero-filled (native order: hashes are not persisted). */
static uint64_t ledger_load_word(const char *s, size_t n)
{
	uint64_t w = 0;
	memcpy(&w, s, n);
	return w;
}

/*
 * ASCII 'A'..'Z' lower-cased in all 8 bytes of w at once (other bytes, UTF-8
 * ones included, unchanged): a byte is upper-case when adding 0x80 - 'A' to
 * its low 7 bits carries into bit 7, adding 0x7f - 'Z' does not, and its own
 * bit 7 is clear; bit 7 shifted right by 2 is the case bit 0x20.
 */
static uint64_t ledger_lower_word(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
	uint64_t low7 = w & ~high;
	uint64_t ge_a = low7 + ones * (0x80 - 'A');
	uint64_t gt_z = low7 + ones * (0x7f - 'Z');
	return w | ((ge_a & ~gt_z & ~w & high) >> 2);
}

/* A hash of the bytes, lower-cased when fold is set: 8 bytes per step. */
uint64_t ledger_hash_bytes(const char *s, size_t n, bool fold)
{
	uint64_t h = 0x9e3779b97f4a7c15ULL ^ n;
	for (size_t i = 0; i < n; i += 8) {
		uint64_t w = ledger_load_word(s + i, n - i >= 8 ? 8 : n - i);
		h = (h ^ (fold ? ledger_lower_word(w) : w)) * 0xff51afd7ed558ccdULL;
		h ^= h >> 32;
	}
	return ledger_mix64(h);
}

/* ---- open-addressing index ---- */

static int ledger_index_init(ledger_index_t *ix, uint32_t cap)
{
	assert(cap >= LEDGER_INDEX_CAP_MIN && (cap & (cap - 1)) == 0);
	ix->slots = bigmem_zalloc((size_t)cap * sizeof(*ix->slots));
	ix->mask = cap - 1;
	ix->used = 0;
	return ix->slots ? 0 : -ENOMEM;
}

static void ledger_index_free(ledger_index_t *ix)
{
	if (ix->slots)
		bigmem_free(ix->slots, ((size_t)ix->mask + 1) * sizeof(*ix->slots));
	ix->slots = NULL;
}

/* The position of the first empty slot of frag's probe run. */
static uint32_t ledger_index_hole(const ledger_index_t *ix, uint32_t frag)
{
	uint32_t i = frag & ix->mask;
	while (ix->slots[i].item != 0)
		i = (i + 1) & ix->mask;
	return i;
}

/* Fills the empty slot pos, which ledger_index_hole() or a probe found. */
static void ledger_index_fill(ledger_index_t *ix, uint32_t pos, uint32_t frag, uint32_t item)
{
	assert(ix->slots[pos].item == 0 && (uint64_t)(ix->used + 1) * 2 <= ix->mask + 1ULL);
	ix->slots[pos] = (ledger_slot_t){ .frag = frag, .item = item + 1 };
	ix->used++;
}

/* Makes room for extra more items, moving into a larger table if needed. */
int ledger_index_reserve(ledger_index_t *ix, uint32_t extra)
{
	uint64_t cap = (uint64_t)ix->mask + 1, need = ((uint64_t)ix->used + extra) * 2;
	if (need <= cap)
		return 0;
	while (cap < need)
		cap *= 2;
	if (cap > (1ULL << 31))
		return -ENOMEM;
	ledger_index_t nix;
	if (ledger_index_init(&nix, (uint32_t)cap) < 0)
		return -ENOMEM;
	for (uint32_t i = 0; i <= ix->mask; i++) {
		ledger_slot_t s = ix->slots[i];
		if (s.item == 0)
			continue;
		ledger_index_fill(&nix, ledger_index_hole(&nix, s.frag), s.frag, s.item - 1);
	}
	assert(nix.used == ix->used);
	ledger_index_free(ix);
	*ix = nix;
	return 0;
}

/* Removes slot pos, shifting later entries of its probe run back. */
static void ledger_index_delete(ledger_index_t *ix, uint32_t pos)
{
	uint32_t i = pos, j = pos;
	for (;;) {
		j = (j + 1) & ix->mask;
		if (ix->slots[j].item == 0)
			break;
		uint32_t k = ix->slots[j].frag & ix->mask;
		bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
		if (!stays) {
			ix->slots[i] = ix->slots[j];
			i = j;
		}
	}
	ix->slots[i] = (ledger_slot_t){ 0 };
	ix->used--;
}

/* ---- lookups ---- */

/*
 * Each probe returns the position of the slot holding its key, or of the
 * empty slot that ends the key's probe run (where an insert puts it).
 */
uint32_t ledger_probe_number(const ledger_t *l, uint64_t number, uint32_t frag)
{
	const ledger_index_t *ix = &l->by_number;
	uint32_t i = frag & ix->mask;
	for (; ix->slots[i].item != 0; i = (i + 1) & ix->mask) {
		ledger_slot_t s = ix->slots[i];
		if (s.frag == frag && l->accounts[s.item - 1].number == number)
			break;
	}
	return i;
}

/* Starts fetching number's home slot, for a lookup soon after. */
static void ledger_prefetch_number(const ledger_t *l, uint64_t number)
{
	const ledger_index_t *ix = &l->by_number;
	__builtin_prefetch(&ix->slots[(uint32_t)ledger_mix64(number) & ix->mask]);
}

static int64_t ledger_find_item(const ledger_t *l, uint64_t number)
{
	uint32_t pos = ledger_probe_number(l, number, (uint32_t)ledger_mix64(number));
	return (int64_t)l->by_number.slots[pos].item - 1;
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

uint32_t ledger_probe_email(const ledger_t *l, const char *email, size_t n, uint32_t frag)
{
	const ledger_index_t *ix = &l->by_email;
	uint32_t i = frag & ix->mask;
	char id[LEDGER_EMAIL_BYTES_MAX + 1];
	for (; ix->slots[i].item != 0; i = (i + 1) & ix->mask)
		if (ix->slots[i].frag == frag &&
		    ledger_account_identity(&l->accounts[ix->slots[i].item - 1], id) == n &&
		    ledger_email_eq(id, email, n))
			break;
	return i;
}

const ledger_account_t *ledger_find_email(const ledger_t *l, const char *email, size_t n)
{
	assert(l && (email || n == 0));
	uint32_t frag = (uint32_t)ledger_hash_bytes(email, n, true);
	uint32_t item = l->by_email.slots[ledger_probe_email(l, email, n, frag)].item;
	return item == 0 ? NULL : &l->accounts[item - 1];
}

uint32_t ledger_probe_key(const ledger_t *l, const char *key, size_t n, uint32_t frag)
{
	const ledger_index_t *ix = &l->by_key;
	uint32_t i = frag & ix->mask;
	for (; ix->slots[i].item != 0; i = (i + 1) & ix->mask) {
		if (ix->slots[i].frag != frag)
			continue;
		const ledger_key_rec_t *r = &l->keys[ix->slots[i].item - 1];
		if (r->len == n && memcmp(r->key, key, n) == 0)
			break;
	}
	return i;
}

const ledger_key_entry_t *ledger_find_key(const ledger_t *l, const char *key, size_t n)
{
	assert(l && (key || n == 0));
	if (n == 0 || n > LEDGER_KEY_BYTES_MAX)
		return NULL;
	uint32_t frag = (uint32_t)ledger_hash_bytes(key, n, false);
	uint32_t item = l->by_key.slots[ledger_probe_key(l, key, n, frag)].item;
	return item == 0 ? NULL : &l->keys[item - 1].entry;
}

/* ---- life cycle ---- */

ledger_t *ledger_new(void)
{
	ledger_t *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->keys_max = LEDGER_KEYS_MAX;
	if (ledger_index_init(&l->by_number, LEDGER_INDEX_CAP_MIN) < 0 ||
	    ledger_index_init(&l->by_email, LEDGER_INDEX_CAP_MIN) < 0 ||
	    ledger_index_init(&l->by_key, LEDGER_INDEX_CAP_MIN) < 0) {
		ledger_free(l);
		return NULL;
	}
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
	ledger_strings_free(l);
	free(l->accounts);
	ledger_index_free(&l->by_number);
	ledger_index_free(&l->by_email);
	ledger_index_free(&l->by_key);
	free(l->keys);
	free(l->sums.tags);
	free(l->sums.totals);
	free(l);
}

/* ---- names ---- */

static const char *const ledger_event_names[] = {
	[LEDGER_EV_ACCOUNT_OPENED] = "account_opened",
	[LEDGER_EV_ACCOUNT_VERIFIED] = "account_verified",
	[LEDGER_EV_CODE_REISSUED] = "code_reissued",
	[LEDGER_EV_MONEY_TRANSFERRED] = "money_transferred",
	[LEDGER_EV_MONEY_WITHDRAWN] = "money_withdrawn",
	[LEDGER_EV_PRIMARY_CHANGED] = "primary_changed",
	[LEDGER_EV_ACCOUNT_ERASED] = "account_erased",
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

bool ledger_number_ok(uint64_t number)
{
	return number >= LEDGER_ACCOUNT_MIN && number < LEDGER_ACCOUNT_LIMIT;
}

/* ---- checking commands ---- */

static proto_err_t ledger_check_key(const ledger_t *l, const ledger_cmd_t *cmd,
				     ledger_key_entry_t *prior)
{
	const ledger_key_entry_t *e = ledger_find_key(l, cmd->key, cmd->key_len);
	if (!e)
		return PROTO_OK;
	if (e->op != cmd->op || sodium_memcmp(e->fp, cmd->fp, LEDGER_FP_BYTES) != 0)
		return PROTO_E_KEY_CONFLICT;
	if (prior)
		*prior = *e;
	return PROTO_DUPLICATE;
}

static proto_err_t ledger_check_verify(const ledger_t *l, const ledger_cmd_t *cmd)
{
	const ledger_account_t *a = cmd->account_valid ? ledger_find(l, cmd->account) : NULL;
	if (!a)
		return PROTO_E_NOT_FOUND;
	if (a->verified)
		return PROTO_E_ALREADY_VERIFIED;
	uint8_t h[LEDGER_CODE_HASH_BYTES];
	crypto_generichash(h, sizeof(h), (const unsigned char *)cmd->code, cmd->code_len, NULL, 0);
	if (sodium_memcmp(h, a->code_hash, sizeof(h)) != 0)
		return PROTO_E_WRONG_CODE;
	return PROTO_OK;
}

static proto_err_t ledger_check_transfer(const ledger_t *l, const ledger_cmd_t *cmd)
{
	if (cmd->amount < 1 || cmd->amount > LEDGER_AMOUNT_MAX)
		return PROTO_E_INVALID_AMOUNT;
	if (cmd->account_valid == cmd->to_valid && cmd->account == cmd->to)
		return PROTO_E_SAME_ACCOUNT;
	const ledger_account_t *from = cmd->account_valid ? ledger_find(l, cmd->account) : NULL;
	if (!from)
		return PROTO_E_NOT_FOUND;
	const ledger_account_t *to = cmd->to_valid ? ledger_find(l, cmd->to) : NULL;
	if (!to)
		return PROTO_E_NOT_FOUND;
	if (!from->verified || !to->verified)
		return PROTO_E_NOT_VERIFIED;
	if (from->balance < cmd->amount)
		return PROTO_E_INSUFFICIENT_FUNDS;
	return PROTO_OK;
}

static proto_err_t ledger_check_withdraw(const ledger_t *l, const ledger_cmd_t *cmd)
{
	if (cmd->amount < 1 || cmd->amount > LEDGER_AMOUNT_MAX)
		return PROTO_E_INVALID_AMOUNT;
	const ledger_account_t *a = cmd->account_valid ? ledger_find(l, cmd->account) : NULL;
	if (!a)
		return PROTO_E_NOT_FOUND;
	if (!a->verified)
		return PROTO_E_NOT_VERIFIED;
	if (a->balance < cmd->amount)
		return PROTO_E_INSUFFICIENT_FUNDS;
	return PROTO_OK;
}

static proto_err_t ledger_check_rules(const ledger_t *l, const ledger_cmd_t *cmd)
{
	const ledger_account_t *a = cmd->account_valid ? ledger_find(l, cmd->account) : NULL;
	switch (cmd->op) {
	case PROTO_OP_OPEN_ACCOUNT:
		assert(cmd->email_len <= LEDGER_EMAIL_BYTES_MAX);
		if (cmd->email_id && ledger_find_email(l, cmd->email_id, LEDGER_EMAIL_ID_CHARS))
			return PROTO_E_ALREADY_EXISTS;
		return ledger_find_email(l, cmd->email, cmd->email_len) ? PROTO_E_ALREADY_EXISTS
									 : PROTO_OK;
	case PROTO_OP_ERASE_ACCOUNT:
		if (!a)
			return PROTO_E_NOT_FOUND;
		if (a->balance != 0 && !cmd->force)
			return PROTO_E_BALANCE_NOT_ZERO;
		return a->erased ? PROTO_E_ALREADY_ERASED : PROTO_OK;
	case PROTO_OP_VERIFY_ACCOUNT:
		return ledger_check_verify(l, cmd);
	case PROTO_OP_REISSUE_CODE:
		if (!a)
			return PROTO_E_NOT_FOUND;
		return a->verified ? PROTO_E_ALREADY_VERIFIED : PROTO_OK;
	case PROTO_OP_TRANSFER:
		return ledger_check_transfer(l, cmd);
	case PROTO_OP_WITHDRAW:
		return ledger_check_withdraw(l, cmd);
	case PROTO_OP_GET_ACCOUNT:
		return a ? PROTO_OK : PROTO_E_NOT_FOUND;
	case PROTO_OP_AUTHENTICATE:
		return a ? PROTO_OK : PROTO_E_AUTH_FAILED;
	case PROTO_OP_NONE:
		return PROTO_E_UNKNOWN_OP;
	default:
		return PROTO_OK;
	}
}

proto_err_t ledger_check(const ledger_t *l, const ledger_cmd_t *cmd, ledger_key_entry_t *prior)
{
	assert(l && cmd);
	if (proto_op_is_command(cmd->op) && cmd->has_key) {
		assert(cmd->key && cmd->key_len >= 1 && cmd->key_len <= LEDGER_KEY_BYTES_MAX);
		proto_err_t e = ledger_check_key(l, cmd, prior);
		if (e != PROTO_OK)
			return e;
	}
	return ledger_check_rules(l, cmd);
}

/* ---- checking events ---- */

/* The identity an opening event indexes (ledger.h) into id; false if malformed. */
static bool ledger_event_identity(const ledger_event_t *ev, char id[LEDGER_EMAIL_BYTES_MAX + 1])
{
	size_t n = strnlen(ev->email, sizeof(ev->email));
	if (ev->has_email_hash) {
		ledger_email_id(ev->email_hash, id);
		return n == 0 && ev->email_enc_len >= LEDGER_SEALED_BYTES_MIN && ev->email_enc_len <= LEDGER_SEALED_BYTES_MAX;
	}
	return n < sizeof(ev->email) && ledger_email_valid(ev->email, n, id) &&
	       strcmp(id, ev->email) == 0;
}

static proto_err_t ledger_check_opened(const ledger_t *l, const ledger_event_t *ev)
{
	char id[LEDGER_EMAIL_BYTES_MAX + 1];
	if (!ledger_number_ok(ev->account) || !ledger_event_identity(ev, id))
		return PROTO_E_BAD_REQUEST;
	if (ev->amount != LEDGER_OPEN_BALANCE)
		return PROTO_E_INVALID_AMOUNT;
	if (memchr(ev->pwhash, '\0', sizeof(ev->pwhash)) == NULL || ev->pwhash[0] == '\0')
		return PROTO_E_BAD_REQUEST;
	if (ledger_find(l, ev->account) || ledger_find_email(l, id, strlen(id)))
		return PROTO_E_ALREADY_EXISTS;
	return PROTO_OK;
}

static proto_err_t ledger_check_move(const ledger_t *l, const ledger_event_t *ev)
{
	if (ev->amount < 1 || ev->amount > LEDGER_AMOUNT_MAX)
		return PROTO_E_INVALID_AMOUNT;
	bool transfer = ev->type == LEDGER_EV_MONEY_TRANSFERRED;
	if (transfer && ev->account == ev->to)
		return PROTO_E_SAME_ACCOUNT;
	if (transfer) /* two accounts far apart: let their cache misses overlap */
		ledger_prefetch_number(l, ev->to);
	const ledger_account_t *from = ledger_find(l, ev->account);
	const ledger_account_t *to = transfer ? ledger_find(l, ev->to) : NULL;
	if (!from || (transfer && !to))
		return PROTO_E_NOT_FOUND;
	if (!from->verified || (transfer && !to->verified))
		return PROTO_E_NOT_VERIFIED;
	if (from->balance < ev->amount)
		return PROTO_E_INSUFFICIENT_FUNDS;
	if (ev->has_balance && ev->balance != from->balance - ev->amount)
		return PROTO_E_BAD_REQUEST; /* the recorded balance after is wrong */
	return PROTO_OK;
}

/* A takeover record: a node name of 1..LEDGER_NODE_BYTES_MAX bytes, no key. */
static proto_err_t ledger_check_primary_changed(const ledger_event_t *ev)
{
	size_t n = strnlen(ev->node, sizeof(ev->node));
	if (n == 0 || n == sizeof(ev->node) || ev->has_key)
		return PROTO_E_BAD_REQUEST;
	return PROTO_OK;
}

static proto_err_t ledger_check_event_rules(const ledger_t *l, const ledger_event_t *ev)
{
	const ledger_account_t *a;
	switch (ev->type) {
	case LEDGER_EV_ACCOUNT_OPENED:
		return ledger_check_opened(l, ev);
	case LEDGER_EV_ACCOUNT_VERIFIED:
	case LEDGER_EV_CODE_REISSUED:
		a = ledger_find(l, ev->account);
		if (!a)
			return PROTO_E_NOT_FOUND;
		return a->verified ? PROTO_E_ALREADY_VERIFIED : PROTO_OK;
	case LEDGER_EV_MONEY_TRANSFERRED:
	case LEDGER_EV_MONEY_WITHDRAWN:
		return ledger_check_move(l, ev);
	case LEDGER_EV_PRIMARY_CHANGED:
		return ledger_check_primary_changed(ev);
	case LEDGER_EV_ACCOUNT_ERASED:
		a = ledger_find(l, ev->account);
		if (!a)
			return PROTO_E_NOT_FOUND;
		return a->erased ? PROTO_E_ALREADY_ERASED : PROTO_OK;
	default:
		return PROTO_E_BAD_REQUEST;
	}
}

proto_err_t ledger_check_event(const ledger_t *l, const ledger_event_t *ev)
{
	assert(l && ev);
	if (ev->seq != l->last_seq + 1 || ev->ts_ms < l->last_ts)
		return PROTO_E_BAD_REQUEST;
	if (ev->has_key) {
		if (ev->key_len < 1 || ev->key_len > LEDGER_KEY_BYTES_MAX)
			return PROTO_E_BAD_REQUEST;
		if (ledger_find_key(l, ev->key, ev->key_len))
			return PROTO_E_KEY_CONFLICT;
	}
	return ledger_check_event_rules(l, ev);
}

/* ---- resolving commands into events ---- */

static ledger_event_type_t ledger_event_of_op(proto_op_t op)
{
	switch (op) {
	case PROTO_OP_OPEN_ACCOUNT: return LEDGER_EV_ACCOUNT_OPENED;
	case PROTO_OP_VERIFY_ACCOUNT: return LEDGER_EV_ACCOUNT_VERIFIED;
	case PROTO_OP_REISSUE_CODE: return LEDGER_EV_CODE_REISSUED;
	case PROTO_OP_TRANSFER: return LEDGER_EV_MONEY_TRANSFERRED;
	case PROTO_OP_ERASE_ACCOUNT: return LEDGER_EV_ACCOUNT_ERASED;
	default: return LEDGER_EV_MONEY_WITHDRAWN;
	}
}

/* The parts only open_account and reissue_code carry. */
static void ledger_event_fresh(const ledger_cmd_t *cmd, const ledger_inputs_t *in,
			       ledger_event_t *ev)
{
	if (ev->type == LEDGER_EV_CODE_REISSUED || ev->type == LEDGER_EV_ACCOUNT_OPENED) {
		assert(in->code_hash);
		memcpy(ev->code_hash, in->code_hash, LEDGER_CODE_HASH_BYTES);
	}
	if (ev->type != LEDGER_EV_ACCOUNT_OPENED)
		return;
	assert(in->pwhash);
	ev->account = in->account;
	ev->amount = LEDGER_OPEN_BALANCE;
	ledger_email_valid(cmd->email, cmd->email_len, ev->email);
	snprintf(ev->pwhash, sizeof(ev->pwhash), "%s", in->pwhash);
}

void ledger_event_from_cmd(const ledger_t *l, const ledger_cmd_t *cmd,
			   const ledger_inputs_t *in, ledger_event_t *ev)
{
	assert(l && cmd && in && ev && proto_op_is_command(cmd->op));
	assert(in->ts_ms >= l->last_ts);
	memset(ev, 0, sizeof(*ev));
	ev->seq = l->last_seq + 1;
	ev->ts_ms = in->ts_ms;
	ev->type = ledger_event_of_op(cmd->op);
	ev->account = cmd->account;
	ev->to = cmd->to;
	ev->amount = cmd->amount;
	if (cmd->has_key) {
		ev->has_key = true;
		memcpy(ev->key, cmd->key, cmd->key_len);
		ev->key_len = cmd->key_len;
		memcpy(ev->fp, cmd->fp, LEDGER_FP_BYTES);
	}
	ledger_event_fresh(cmd, in, ev);
	if (ev->type == LEDGER_EV_MONEY_WITHDRAWN) {
		const ledger_account_t *a = ledger_find(l, ev->account);
		assert(a); /* ledger_check() found it */
		ev->has_balance = true;
		ev->balance = a->balance - ev->amount;
	}
}

/* ---- applying events ---- */

static proto_op_t ledger_op_of_event(ledger_event_type_t t)
{
	switch (t) {
	case LEDGER_EV_ACCOUNT_OPENED: return PROTO_OP_OPEN_ACCOUNT;
	case LEDGER_EV_ACCOUNT_VERIFIED: return PROTO_OP_VERIFY_ACCOUNT;
	case LEDGER_EV_CODE_REISSUED: return PROTO_OP_REISSUE_CODE;
	case LEDGER_EV_MONEY_TRANSFERRED: return PROTO_OP_TRANSFER;
	case LEDGER_EV_MONEY_WITHDRAWN: return PROTO_OP_WITHDRAW;
	case LEDGER_EV_ACCOUNT_ERASED: return PROTO_OP_ERASE_ACCOUNT;
	case LEDGER_EV_PRIMARY_CHANGED: break; /* carries no key */
	}
	return PROTO_OP_NONE;
}

/* Grows the key ring to ncap records (never past keys_max). */
int ledger_keys_grow(ledger_t *l, uint32_t ncap)
{
	assert(l->keys_head == 0); /* nothing is evicted before the ring is full */
	if (ncap > l->keys_max)
		ncap = l->keys_max;
	if (ncap <= l->keys_cap)
		return 0;
	ledger_key_rec_t *keys = realloc(l->keys, (size_t)ncap * sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	l->keys = keys;
	l->keys_cap = ncap;
	return 0;
}

/* Makes room for one more key, evicting the oldest when keys_max are held. */
int ledger_keys_reserve(ledger_t *l)
{
	int rc = ledger_index_reserve(&l->by_key, 1);
	if (rc < 0)
		return rc;
	if (l->keys_n < l->keys_cap || l->keys_cap == l->keys_max)
		return 0;
	return ledger_keys_grow(l, l->keys_cap ? l->keys_cap * 2 : LEDGER_KEYS_CAP_MIN);
}

static void ledger_keys_evict_oldest(ledger_t *l)
{
	assert(l->keys_n > 0);
	ledger_index_t *ix = &l->by_key;
	uint32_t i = l->keys[l->keys_head].frag & ix->mask;
	while (ix->slots[i].item != l->keys_head + 1) {
		assert(ix->slots[i].item != 0);
		i = (i + 1) & ix->mask;
	}
	ledger_index_delete(ix, i);
	l->keys_head = ledger_keys_slot(l, 1);
	l->keys_n--;
}

/*
 * Stores a key whose room is reserved and which is not held, evicting the
 * oldest when keys_max are held; returns its record, to be filled in.
 */
ledger_key_rec_t *ledger_keys_put(ledger_t *l, const char *key, size_t n, uint32_t frag)
{
	assert(n >= 1 && n <= LEDGER_KEY_BYTES_MAX);
	if (l->keys_n == l->keys_max)
		ledger_keys_evict_oldest(l);
	assert(l->keys_n < l->keys_cap);
	uint32_t slot = ledger_keys_slot(l, l->keys_n);
	ledger_key_rec_t *r = &l->keys[slot];
	memset(r, 0, sizeof(*r));
	r->frag = frag;
	r->len = (uint8_t)n;
	memcpy(r->key, key, n);
	l->keys_n++;
	ledger_index_fill(&l->by_key, ledger_index_hole(&l->by_key, frag), frag, slot);
	return r;
}

static void ledger_keys_add(ledger_t *l, const ledger_event_t *ev, int64_t balance)
{
	uint32_t frag = (uint32_t)ledger_hash_bytes(ev->key, ev->key_len, false);
	ledger_key_rec_t *r = ledger_keys_put(l, ev->key, ev->key_len, frag);
	r->entry.op = ledger_op_of_event(ev->type);
	r->entry.seq = ev->seq;
	r->entry.account = ev->type == LEDGER_EV_ACCOUNT_OPENED ? ev->account : 0;
	r->entry.balance = balance;
	memcpy(r->entry.fp, ev->fp, LEDGER_FP_BYTES);
}

/* Grows the accounts array to hold at least n accounts. */
int ledger_accounts_reserve(ledger_t *l, uint32_t n)
{
	if (n > LEDGER_ITEMS_MAX)
		return -ENOMEM;
	if (n <= l->accounts_cap)
		return 0;
	uint32_t ncap = l->accounts_cap ? l->accounts_cap : LEDGER_ACCOUNTS_CAP_MIN;
	while (ncap < n)
		ncap *= 2;
	ledger_account_t *a = realloc(l->accounts, (size_t)ncap * sizeof(*a));
	if (!a)
		return -ENOMEM;
	l->accounts = a;
	l->accounts_cap = ncap;
	return 0;
}

/* Makes room for one more account with strings of the given total bytes. */
int ledger_account_reserve(ledger_t *l, size_t strings_bytes)
{
	int rc = ledger_accounts_reserve(l, l->accounts_n + 1);
	if (rc == 0)
		rc = ledger_index_reserve(&l->by_number, 1);
	if (rc == 0)
		rc = ledger_index_reserve(&l->by_email, 1);
	if (rc == 0)
		rc = ledger_strings_reserve(l, strings_bytes);
	return rc;
}

/* Allocates everything the event needs, so that applying it cannot fail. */
static int ledger_reserve(ledger_t *l, const ledger_event_t *ev)
{
	int rc = 0;
	if (ev->type == LEDGER_EV_ACCOUNT_OPENED)
		rc = ledger_account_reserve(l, LEDGER_EMAIL_BYTES_MAX + strlen(ev->pwhash) +
		                                       ev->email_enc_len + 3);
	if (rc == 0 && ev->has_key)
		rc = ledger_keys_reserve(l);
	if (rc == 0 && (ev->type == LEDGER_EV_MONEY_TRANSFERRED ||
			ev->type == LEDGER_EV_MONEY_WITHDRAWN))
		rc = ledger_sums_reserve(&l->sums);
	return rc;
}


/* Adds an account that is not held and whose room is reserved. */
void ledger_account_add(ledger_t *l, const ledger_opening_t *o)
{
	uint32_t item = l->accounts_n++;
	assert(item < l->accounts_cap);
	ledger_account_t *a = &l->accounts[item];
	*a = o->a;
	ledger_record_put(l, a, o);
	ledger_index_fill(&l->by_number, ledger_index_hole(&l->by_number, o->number_frag),
			  o->number_frag, item);
	if (o->email_len) /* an erased account has no identity */
		ledger_index_fill(&l->by_email, ledger_index_hole(&l->by_email, o->email_frag),
				  o->email_frag, item);
	l->total_balance += a->balance;
}

static void ledger_apply_opened(ledger_t *l, const ledger_event_t *ev)
{
	char id[LEDGER_EMAIL_BYTES_MAX + 1];
	bool ok = ledger_event_identity(ev, id);
	assert(ok);
	ledger_opening_t o = {
		.a = { .number = ev->account, .balance = ev->amount, .opened_at_ms = ev->ts_ms,
		       .opened_seq = ev->seq },
		.email = id,
		.pwhash = ev->pwhash,
		.email_len = strlen(id),
		.pwhash_len = strlen(ev->pwhash),
		.email_enc = ev->has_email_hash ? ev->email_enc : NULL,
		.email_enc_len = ev->has_email_hash ? ev->email_enc_len : 0,
		.number_frag = (uint32_t)ledger_mix64(ev->account),
	};
	(void)ok;
	o.email_frag = (uint32_t)ledger_hash_bytes(id, o.email_len, true);
	memcpy(o.a.code_hash, ev->code_hash, LEDGER_CODE_HASH_BYTES);
	ledger_account_add(l, &o);
}

void ledger_preview(const ledger_t *l, const ledger_event_t *ev, ledger_result_t *out)
{
	const ledger_account_t *a = ledger_find(l, ev->account);
	bool money = ev->type == LEDGER_EV_MONEY_TRANSFERRED || ev->type == LEDGER_EV_MONEY_WITHDRAWN;
	out->balance = ev->type == LEDGER_EV_ACCOUNT_OPENED ? ev->amount : a ? a->balance : 0;
	if (money)
		out->balance -= ev->amount;
}

/*
 * account_erased: the identity leaves the index (the email may be used
 * again), and the identity's and the sealed email's bytes are overwritten
 * in place, so that no later snapshot or core holds them.
 */
static void ledger_apply_erased(ledger_t *l, ledger_account_t *a)
{
	char id[LEDGER_EMAIL_BYTES_MAX + 1];
	size_t n = ledger_account_identity(a, id);
	if (n) {
		uint32_t frag = (uint32_t)ledger_hash_bytes(id, n, true);
		uint32_t pos = ledger_probe_email(l, id, n, frag);
		assert(l->by_email.slots[pos].item != 0);
		ledger_index_delete(&l->by_email, pos);
		sodium_memzero(id, n);
	}
	ledger_record_erase(l, a);
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
	case LEDGER_EV_ACCOUNT_ERASED:
		ledger_apply_erased(l, a);
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
	assert(ledger_check_event(l, ev) == PROTO_OK);
	int rc = ledger_reserve(l, ev);
	if (rc < 0)
		return rc;
	if (ev->type == LEDGER_EV_ACCOUNT_OPENED)
		ledger_apply_opened(l, ev);
	/* a takeover record only moves seq and time: it has no subject account */
	int64_t balance = ev->type == LEDGER_EV_PRIMARY_CHANGED ? 0 : ledger_apply_rules(l, ev);
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
