/*
 * ledger_impl.h - private to the ledger's files: the layout of ledger_t
 * (described at the top of ledger.c) and the few internal functions one of
 * its files offers another. Nothing outside common/ledger*.c includes it.
 *
 * The ledger's files, lowest first:
 *   ledger_email.c  what an email is (no state)
 *   ledger_record.c an account's identity, password hash and sealed email,
 *                   packed in the strings arena
 *   ledger_reads.c  civil dates, the sums read model, totals, iteration
 *   ledger.c        the index, the string arena, the key ring, the rules,
 *                   resolving commands into events and apply (one file, so
 *                   that the lookups stay inlined into the hot path)
 *   ledger_snap.c   the snapshot codec (ledger_pack / ledger_unpack)
 */
#ifndef ESBANK_LEDGER_IMPL_H
#define ESBANK_LEDGER_IMPL_H

#include "ledger.h"

#define LEDGER_INDEX_CAP_MIN 64u
#define LEDGER_ACCOUNTS_CAP_MIN 64u
#define LEDGER_KEYS_CAP_MIN 1024u
#define LEDGER_CHUNK_BYTES (1u << 20) /* strings arena: bytes per chunk */
#define LEDGER_ACCOUNT_MIN 1000000000000000ULL  /* 10^15: 16 digits */
#define LEDGER_ACCOUNT_LIMIT 10000000000000000ULL /* 10^16 */
#define LEDGER_ITEMS_MAX (UINT32_MAX / 4)
#define LEDGER_PW_PREFIXES_MAX 16     /* distinct argon2id parameter strings kept once */
#define LEDGER_PW_PREFIX_BYTES_MAX 48 /* "$argon2id$v=19$m=65536,t=2,p=1$" is 31 */
#define LEDGER_PW_BIN_BYTES 48        /* the 16-byte salt and the 32-byte hash */
#define LEDGER_PW_COMPACT_BYTES (1 + LEDGER_PW_BIN_BYTES) /* a snapshot's: prefix number first */
#define LEDGER_RECORD_BYTES_MAX \
	(LEDGER_EMAIL_BYTES_MAX + LEDGER_PWHASH_BYTES_MAX + LEDGER_SEALED_BYTES_MAX)
#define SUM_YEAR (1ULL << 56)
#define SUM_MONTH (2ULL << 56)
#define SUM_DAY (3ULL << 56)

typedef struct {
	uint32_t frag; /* low 32 bits of the key's hash; home = frag & mask */
	uint32_t item; /* item + 1; 0 = empty */
} ledger_slot_t;

typedef struct {
	ledger_slot_t *slots;
	uint32_t mask; /* capacity - 1 */
	uint32_t used;
} ledger_index_t;

typedef struct ledger_chunk {
	struct ledger_chunk *prev; /* the chunk filled before this one */
	size_t used, cap;
	char bytes[];
} ledger_chunk_t;

typedef struct {
	ledger_key_entry_t entry;
	uint32_t frag; /* of the key's hash, to find its slot when evicted */
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
	ledger_chunk_t *strings; /* the chunk being filled; NULL before any */
	ledger_index_t by_number, by_email, by_key;
	ledger_key_rec_t *keys;
	uint32_t keys_head, keys_n, keys_cap, keys_max;
	ledger_sums_t sums;
	int64_t moved_total;
	uint64_t last_seq;
	int64_t last_ts;
	int64_t total_balance;
	int64_t total_withdrawn;
	char pw_prefixes[LEDGER_PW_PREFIXES_MAX][LEDGER_PW_PREFIX_BYTES_MAX];
	uint8_t pw_prefix_len[LEDGER_PW_PREFIXES_MAX];
	uint32_t pw_prefixes_n;
	ledger_sealed_store_t sealed;   /* put == NULL: none, all in memory */
};

/* An account to add, its strings still where they came from. */
typedef struct {
	ledger_account_t a; /* email and pwhash unset */
	const char *email, *pwhash; /* not NUL-terminated, not owned */
	size_t email_len, pwhash_len; /* email_len 0: an erased account */
	const uint8_t *email_enc;     /* the sealed email, not owned; NULL when none */
	size_t email_enc_len;
	const uint8_t *pw_bin;        /* or the password hash already compact (a version 3
	                               * snapshot): salt || hash, prefix pw_prefix; pwhash unset */
	uint8_t pw_prefix;
	uint32_t number_frag, email_frag;
} ledger_opening_t;

/* The 64-bit finaliser (splitmix64) every index and the sums hash with. */
static inline uint64_t ledger_mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

/* The ring slot of the i-th oldest key. */
static inline uint32_t ledger_keys_slot(const ledger_t *l, uint32_t i)
{
	uint32_t slot = l->keys_head + i;
	return slot >= l->keys_cap ? slot - l->keys_cap : slot;
}

/* Owned by ledger.c */
uint64_t ledger_hash_bytes(const char *s, size_t n, bool fold);
uint32_t ledger_probe_number(const ledger_t *l, uint64_t number, uint32_t frag);
uint32_t ledger_probe_email(const ledger_t *l, const char *email, size_t n, uint32_t frag);
uint32_t ledger_probe_key(const ledger_t *l, const char *key, size_t n, uint32_t frag);
bool ledger_number_ok(uint64_t number);
int ledger_account_reserve(ledger_t *l, size_t strings_bytes);
void ledger_account_add(ledger_t *l, const ledger_opening_t *o);
int ledger_keys_reserve(ledger_t *l);
ledger_key_rec_t *ledger_keys_put(ledger_t *l, const char *key, size_t n, uint32_t frag);
int ledger_index_reserve(ledger_index_t *ix, uint32_t extra);
int ledger_keys_grow(ledger_t *l, uint32_t ncap);
int ledger_accounts_reserve(ledger_t *l, uint32_t n);

/* Owned by ledger_strings.c: makes room for n more bytes in the chunk being
 * filled (0 or -ENOMEM); copies n bytes at p into that room and returns the
 * copy; frees every chunk. */
int ledger_strings_reserve(ledger_t *l, size_t n);
uint8_t *ledger_strings_bytes(ledger_t *l, const uint8_t *p, size_t n);
void ledger_strings_free(ledger_t *l);

/* Owned by ledger_record.c */
size_t ledger_record_bytes_max(const ledger_opening_t *o);
void ledger_record_put(ledger_t *l, ledger_account_t *a, const ledger_opening_t *o);
void ledger_record_erase(const ledger_t *l, ledger_account_t *a);
uint8_t ledger_record_prefix(ledger_t *l, const char *p, size_t n);
size_t ledger_record_pw_compact(const ledger_account_t *a, uint8_t out[LEDGER_PW_COMPACT_BYTES]);

/* Owned by ledger_reads.c */
int64_t ledger_sums_get(const ledger_sums_t *s, uint64_t tag);
int ledger_sums_reserve(ledger_sums_t *s);
void ledger_sums_record(ledger_t *l, int64_t ts_ms, int64_t amount);
void ledger_sums_add(ledger_sums_t *s, uint64_t tag, int64_t amount);

#endif
