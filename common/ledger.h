/*
 * ledger.h - the domain rules of esbank: the state and the pure functions
 * that check a command and apply an event. No I/O, no clock, no randomness:
 * everything non-deterministic (sequence number, time, account number,
 * verification code hash, password hash) is resolved by the caller and
 * arrives inside the event. The resolver, the snapshotter, the offline tools
 * and the unit tests all call these same functions.
 *
 * Invariants of ledger_t (asserted after every apply):
 *   - every balance >= 0;
 *   - sum of balances == LEDGER_OPEN_BALANCE * accounts - total withdrawn;
 *   - last_seq grows by exactly one per applied event;
 *   - an email maps to exactly one account that is not erased: by its
 *     identity, the lower-cased email for accounts opened before emails
 *     were sealed, else the 64 lowercase hex digits of its keyed hash (no
 *     '@', so the two kinds never meet); an erased account has none.
 */
#ifndef ESBANK_LEDGER_H
#define ESBANK_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "protocol.h"

#define LEDGER_OPEN_BALANCE 100000         /* cents: $1,000.00 */
#define LEDGER_AMOUNT_MAX 1000000000000LL  /* 10^12 cents */
#define LEDGER_ACCOUNT_DIGITS 16
#define LEDGER_EMAIL_BYTES_MIN 3
#define LEDGER_EMAIL_BYTES_MAX 254
#define LEDGER_PASSWORD_BYTES_MIN 8
#define LEDGER_PASSWORD_BYTES_MAX 1024
#define LEDGER_KEY_BYTES_MAX 64
#define LEDGER_KEYS_MAX (1u << 20)          /* >= 1,000,000 keys remembered */
#define LEDGER_PWHASH_BYTES_MAX 128        /* crypto_pwhash_STRBYTES */
#define LEDGER_CODE_HASH_BYTES 32          /* BLAKE2b-256 of the code */
#define LEDGER_FP_BYTES 16                 /* idempotency fingerprint */
#define LEDGER_NODE_BYTES_MAX 255          /* primary_changed's node name */
#define LEDGER_INACTIVE_DAYS_DEFAULT 30
#define LEDGER_DAY_MS 86400000LL
#define LEDGER_EMAIL_HASH_BYTES 32         /* keyed BLAKE2b-256 of the email */
#define LEDGER_EMAIL_ID_CHARS (2 * LEDGER_EMAIL_HASH_BYTES)
#define LEDGER_NONCE_BYTES 24              /* the sealed email's nonce (common/pii.h) */
#define LEDGER_SEALED_BYTES_MIN (LEDGER_NONCE_BYTES + 16 + LEDGER_EMAIL_BYTES_MIN)
#define LEDGER_SEALED_BYTES_MAX (LEDGER_NONCE_BYTES + 16 + LEDGER_EMAIL_BYTES_MAX)
#define LEDGER_SNAPSHOT_VERSION 3

typedef enum {
	LEDGER_EV_ACCOUNT_OPENED = 1,
	LEDGER_EV_ACCOUNT_VERIFIED,
	LEDGER_EV_CODE_REISSUED,
	LEDGER_EV_MONEY_TRANSFERRED,
	LEDGER_EV_MONEY_WITHDRAWN,
	LEDGER_EV_PRIMARY_CHANGED,
	LEDGER_EV_ACCOUNT_ERASED,
} ledger_event_type_t;

/*
 * A resolved event, as logged. Fixed-size fields so that an event needs no
 * allocation. Which fields are meaningful depends on type:
 *   account_opened:    account, amount (opening balance), pwhash, code_hash and
 *                      either has_email_hash, email_hash and email_enc (the
 *                      email sealed with the account's key, common/pii.h;
 *                      email is empty) or, in logs written before sealing
 *                      and in the what-if's stand-ins, email (lower-cased)
 *   account_erased:    account (its personal data is destroyed)
 *   account_verified:  account
 *   code_reissued:     account, code_hash
 *   money_transferred: account (from), to, amount
 *   money_withdrawn:   account, amount, and balance (the account's balance
 *                      after) when has_balance (events of older logs lack it)
 *   primary_changed:   node (the group that took over as the replication
 *                      primary; written by the replicator, never by the
 *                      resolver; it changes no balance and carries no key)
 * key/fp are set when the command carried an idempotency key.
 */
typedef struct {
	uint64_t seq;
	int64_t ts_ms;
	ledger_event_type_t type;
	uint64_t account;
	uint64_t to;
	int64_t amount;
	bool has_balance;   /* money_withdrawn: balance is set */
	int64_t balance;    /* money_withdrawn: the account's balance after */
	char email[LEDGER_EMAIL_BYTES_MAX + 1];
	bool has_email_hash; /* account_opened: sealed, not plain */
	uint8_t email_hash[LEDGER_EMAIL_HASH_BYTES];
	uint8_t email_enc[LEDGER_SEALED_BYTES_MAX];
	size_t email_enc_len;
	char pwhash[LEDGER_PWHASH_BYTES_MAX];
	uint8_t code_hash[LEDGER_CODE_HASH_BYTES];
	bool has_key;
	char key[LEDGER_KEY_BYTES_MAX + 1];
	size_t key_len;
	uint8_t fp[LEDGER_FP_BYTES];
	char node[LEDGER_NODE_BYTES_MAX + 1]; /* primary_changed: 1.. bytes, no NUL */
} ledger_event_t;

/*
 * A decoded command or query (see request.h for decoding). Strings point into
 * the caller's buffer and are not NUL-terminated; account numbers that are
 * not 16 decimal digits with a non-zero first digit are kept as
 * account_valid = false so that the rules answer not_found.
 */
typedef struct {
	proto_op_t op;
	uint64_t id;
	const char *email;    size_t email_len;
	const char *email_id; /* open_account: the keyed hash's 64 hex digits, or NULL */
	bool force;           /* erase_account: even with money in the account */
	const char *password; size_t password_len;
	const char *code;     size_t code_len;
	uint64_t account;     bool account_valid;  /* account / from */
	uint64_t to;          bool to_valid;
	int64_t amount;
	bool has_key;
	const char *key;      size_t key_len;
	uint8_t fp[LEDGER_FP_BYTES];    /* fingerprint of op + arguments */
	bool dry_run;                   /* commands: answer, apply nothing */
	/* queries */
	int64_t year, month, day;       /* 0 when absent */
	int64_t days;                   /* inactive_users */
	uint64_t from_seq, limit;       /* events / subscribe */
	bool has_from;
} ledger_cmd_t;

typedef struct ledger ledger_t;

typedef struct {
	uint64_t number;
	int64_t balance;
	int64_t opened_at_ms;
	int64_t last_activity_ms; /* 0 when none */
	uint64_t opened_seq;    /* account_opened's seq (the seal's associated data) */
	uint8_t code_hash[LEDGER_CODE_HASH_BYTES];
	/* the rest is private to common/ledger*.c: read it with ledger_account_identity(),
	   ledger_account_pwhash() and ledger_account_sealed() */
	uint8_t *rec;           /* identity, password hash, sealed email (ledger_record.c) */
	bool verified;
	bool erased;            /* its personal data destroyed (account_erased) */
	uint8_t id_len, pw_len, pw_prefix;
	uint8_t seal_flags;     /* LEDGER_SEAL_* */
	uint16_t enc_len;
} ledger_account_t;

/*
 * An account's email identity (see the invariants): its lower-cased email
 * (opened before sealing), the 64 hex digits of its keyed hash, or "" when
 * erased. Returns its length.
 */
size_t ledger_account_identity(const ledger_account_t *a, char out[LEDGER_EMAIL_BYTES_MAX + 1]);
/* An account's argon2id string, NUL-terminated. */
void ledger_account_pwhash(const ledger_t *l, const ledger_account_t *a,
                           char out[LEDGER_PWHASH_BYTES_MAX]);
/*
 * An account's sealed email as its event held it (nonce || ciphertext ||
 * tag, common/pii.h) into out; its length, 0 when there is none (opened
 * before sealing, or erased). For a ledger without a sealed store (else
 * see ledger_account_sealed_in).
 */
size_t ledger_account_sealed(const ledger_account_t *a, uint8_t out[LEDGER_SEALED_BYTES_MAX]);
/*
 * The nonce common/pii.c seals account's email with in event seq: account
 * and seq (u64 big-endian each), then 8 zero bytes. Safe only because each
 * data key seals exactly one message (the email of the one account_opened
 * event it was drawn for): a nonce must never repeat under one key.
 */
void ledger_sealed_nonce(uint64_t account, uint64_t seq, uint8_t nonce[LEDGER_NONCE_BYTES]);

#define LEDGER_SEAL_NONCE_DERIVED 1u /* its nonce is ledger_sealed_nonce()'s, not kept */
#define LEDGER_SEAL_STORED 2u        /* kept in the ledger's sealed store, not in memory */

/*
 * Somewhere other than memory to keep the accounts' sealed emails (the
 * resolver's: a file, resolver/sealed.c). put stores n bytes and returns a
 * reference > 0 to read them back with get (0 or -errno), or 0 when it
 * cannot (the ledger keeps them in memory then); wipe overwrites them with
 * zeros (an erased account's). Called from the ledger's own functions, on
 * the thread that calls them.
 */
typedef struct {
	void *arg;
	uint64_t (*put)(void *arg, const uint8_t *p, size_t n);
	int (*get)(void *arg, uint64_t ref, uint8_t *out, size_t n);
	void (*wipe)(void *arg, uint64_t ref, size_t n);
} ledger_sealed_store_t;

/* Keeps the sealed emails of the accounts added from now on in s (copied). */
void ledger_set_sealed_store(ledger_t *l, const ledger_sealed_store_t *s);

/*
 * ledger_account_sealed() for an account of l, wherever its sealed email is
 * kept: its length (0: none), or -EIO when the store cannot read it back.
 */
long ledger_account_sealed_in(const ledger_t *l, const ledger_account_t *a,
                              uint8_t out[LEDGER_SEALED_BYTES_MAX]);

/* What a keyed command's original success reply held. */
typedef struct {
	proto_op_t op;
	uint64_t seq;
	uint64_t account;  /* open_account's new account */
	int64_t balance;   /* transfer / withdraw: balance after */
	uint8_t fp[LEDGER_FP_BYTES];
} ledger_key_entry_t;

/* What applying an event produced, for the reply. */
typedef struct {
	int64_t balance;   /* the subject account's balance after */
} ledger_result_t;


/* Creates an empty state; NULL on allocation failure. */
ledger_t *ledger_new(void);
void ledger_free(ledger_t *l);

/* The event type's protocol name ("money_withdrawn", ...); NULL if invalid. */
const char *ledger_event_type_name(ledger_event_type_t t);
/* Parses a type name; 0 if unknown. */
ledger_event_type_t ledger_event_type_parse(const char *s, size_t n);

/*
 * Checks a decoded command against the state, in PROTOCOL.md's order, after
 * its bad_request checks have passed: first the idempotency key (returns
 * PROTO_DUPLICATE and fills *prior when the same command was accepted
 * before, PROTO_E_KEY_CONFLICT when the key was used for another), then the
 * op's rules. PROTO_OK means an event may be resolved from it. For
 * open_account with a duplicate key the caller must still compare the
 * password with the account's hash (it is not part of the fingerprint).
 */
proto_err_t ledger_check(const ledger_t *l, const ledger_cmd_t *cmd, ledger_key_entry_t *prior);

/*
 * Notes on ledger_check() for queries: get_account answers not_found for an
 * unknown or malformed account; authenticate answers auth_failed for one
 * (the caller still spends the time of a password check, then compares the
 * password with ledger_find()->pwhash); the other queries pass. Pointers
 * returned by the lookups below stay valid until the next ledger_apply().
 */

/*
 * The non-deterministic inputs of an event, chosen by the caller: the
 * resolver draws them (clock, random number, random code, argon2id); the
 * offline what-if uses stand-ins. Which fields are read depends on the op:
 *   ts_ms      every op; >= ledger_last_ts()
 *   account    open_account: the new account's number (not in use)
 *   pwhash     open_account: the password hash, NUL-terminated
 *   code_hash  open_account, reissue_code: LEDGER_CODE_HASH_BYTES bytes
 */
typedef struct {
	int64_t ts_ms;
	uint64_t account;
	const char *pwhash;
	const uint8_t *code_hash;
} ledger_inputs_t;

/*
 * Resolves a command that ledger_check() accepted (PROTO_OK) into the event
 * it makes: seq is ledger_last_seq() + 1, the command's fields and key, the
 * inputs in *in, the lower-cased email of open_account and the balance after
 * a withdrawal. Fills *ev (the caller's); does not apply it.
 */
void ledger_event_from_cmd(const ledger_t *l, const ledger_cmd_t *cmd,
			   const ledger_inputs_t *in, ledger_event_t *ev);

/*
 * Checks n transfers (op PROTO_OP_TRANSFER, as request_decode_transfers()
 * makes them) as one all-or-none batch, each against the state with the
 * ones before it applied (ledger_batch.c), without changing the state.
 * PROTO_OK when every one would succeed (a keyed retry, of the state or of
 * an item before it, succeeds), else the first failing item's error and its
 * index in *bad (UINT32_MAX when none; PROTO_E_INTERNAL: out of memory).
 */
#define LEDGER_BATCH_MAX 8192 /* the "transfers" op's limit */
proto_err_t ledger_check_batch(const ledger_t *l, const ledger_cmd_t *cmds, uint32_t n,
                               uint32_t *bad);

/*
 * Checks that an already-resolved event may be applied to the state (used in
 * replay and audit): seq is last_seq + 1, ts does not go back, the accounts
 * exist, funds suffice and so on. Returns PROTO_OK or the rule it breaks.
 */
proto_err_t ledger_check_event(const ledger_t *l, const ledger_event_t *ev);

/*
 * Applies an event that ledger_check_event() accepts (asserted) and fills
 * *out (may be NULL). Remembers its key, if any. Returns 0, or -ENOMEM.
 */
int ledger_apply(ledger_t *l, const ledger_event_t *ev, ledger_result_t *out);

/*
 * What ledger_apply() would fill *out with for ev (checked, not applied):
 * the dry run's answer (docs/protocol.md, "Dry runs"). Changes nothing.
 */
void ledger_preview(const ledger_t *l, const ledger_event_t *ev, ledger_result_t *out);

/* Lookups; NULL when absent. email (or an identity) is compared lower-cased. */
const ledger_account_t *ledger_find(const ledger_t *l, uint64_t number);
const ledger_account_t *ledger_find_email(const ledger_t *l, const char *email, size_t n);
const ledger_key_entry_t *ledger_find_key(const ledger_t *l, const char *key, size_t n);

/* Totals. */
uint64_t ledger_last_seq(const ledger_t *l);
int64_t ledger_last_ts(const ledger_t *l);
size_t ledger_account_count(const ledger_t *l);
int64_t ledger_total_balance(const ledger_t *l);
int64_t ledger_total_withdrawn(const ledger_t *l);

/* Calls cb for every account in opening order; stops early if cb returns non-zero. */
int ledger_each_account(const ledger_t *l, int (*cb)(const ledger_account_t *a, void *arg),
                        void *arg);

/*
 * Calls cb for every remembered idempotency key, oldest first (the order in
 * which they are evicted); stops early if cb returns non-zero. For snapshots.
 */
int ledger_each_key(const ledger_t *l,
		    int (*cb)(const char *key, size_t n, const ledger_key_entry_t *e, void *arg),
		    void *arg);

/*
 * Sets how many keys are remembered before the oldest is evicted (default
 * LEDGER_KEYS_MAX, which the protocol requires). Only for tests, on a new
 * ledger; 1 <= keys_max <= LEDGER_KEYS_MAX.
 */
void ledger_set_keys_max(ledger_t *l, size_t keys_max);

/*
 * sum_transactions: total amount of transfers and withdrawals in the given
 * UTC year / month / day (0 = not given; month needs year, day needs month).
 */
int64_t ledger_sum_transactions(const ledger_t *l, int64_t year, int64_t month, int64_t day);

/* inactive_users: accounts without transfer or withdrawal since now - days. */
uint64_t ledger_inactive_users(const ledger_t *l, int64_t days, int64_t now_ms);

/*
 * Packs the whole state as one msgpack map (the format is described at the
 * top of ledger.c), for snapshots. Pure: the caller writes the bytes.
 */
void ledger_pack(const ledger_t *l, msgpack_packer *pk);

/*
 * Loads buf[0..len), the bytes of a map packed by ledger_pack(), into l,
 * which must be new (empty). Returns 0, -EINVAL for malformed bytes or an
 * inconsistent state (l must then be freed), or -ENOMEM.
 */
int ledger_unpack(ledger_t *l, const char *buf, size_t len);

/*
 * Validates an email (PROTOCOL.md; the rule is at the top of ledger_email.c)
 * and, when out is not NULL, writes it lower-cased (ASCII letters only) and
 * NUL-terminated into out. False when it is not a valid email.
 */
bool ledger_email_valid(const char *s, size_t n, char out[LEDGER_EMAIL_BYTES_MAX + 1]);

/* The identity of a sealed email: the hash's 64 lowercase hex digits. */
void ledger_email_id(const uint8_t hash[LEDGER_EMAIL_HASH_BYTES],
                     char out[LEDGER_EMAIL_ID_CHARS + 1]);

/* Formats a 16-digit account number into buf (17 bytes). */
void ledger_account_format(uint64_t number, char buf[LEDGER_ACCOUNT_DIGITS + 1]);
/* Parses a 16-digit account number; false if not of that form. */
bool ledger_account_parse(const char *s, size_t n, uint64_t *number);

#endif
