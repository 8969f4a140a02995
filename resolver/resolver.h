/*
 * resolver.h - internals of esbank-resolver: the owner of the in-memory state.
 *
 * The resolver answers one bus at a time over RUN/resolver.sock with the peer
 * protocol of docs/peers.md. Each client request (a command or a state
 * query) becomes one "res" item; results produced while a batch is handled
 * are sent together in one frame.
 *
 * Files of the program, by concern, and the way calls run:
 *   main.c      usage, options, hand-off to resolver_start()
 *   resolver.c  the socket (common/peer.h) and the bus's messages: req,
 *               replay, reset, load; calls commands.c and queries.c
 *   commands.c  a command resolved into an event; queries.c a state query;
 *               both call pwhash.c and results.c
 *   bulk.c      the "transfers" op: many transfers, one step; calls results.c
 *   dryrun.c    a command with "dry_run": checked and answered, nothing
 *               applied; calls commands.c (the account draw), pwhash.c
 *               and results.c
 *   pwhash.c    password work in the thread pool (and a new account's key
 *               written to DATA/keys beside the hash); what follows a hash
 *               or a check is commands.c's, reached through hashed_cb and
 *               duplicate_cb, which resolver.c registers
 *   keys.c      the key store: emails hashed, sealed, opened; keys destroyed
 *               (a leaf: common/keystore.c, common/pii.c)
 *   results.c   the "res" items collected and sent; the clock (a leaf)
 *   sealed.c    the ledger's sealed emails kept in an unnamed file in DATA
 *               instead of memory (a leaf; resolver.c attaches it to each
 *               new ledger)
 */
#ifndef ESBANK_RESOLVER_H
#define ESBANK_RESOLVER_H

#include "conn.h"
#include "keystore.h"
#include "peer.h"
#include "ledger.h"
#include "msg.h"

#include <stdint.h>
#include <uv.h>

#define RESOLVER_CODE_BYTES 24     /* 192 random bits per verification code */
#define RESOLVER_CODE_CHARS_MAX 48 /* its URL-safe base64 text */
#define RESOLVER_RES_BYTES_MAX (FRAME_BODY_MAX - 256) /* items in one "res" frame */
#define RESOLVER_ITEM_OVERHEAD 64  /* an item's map, keys, ids and bin headers */
#define RESOLVER_BULK_EVS_BYTES_MAX (128 * 1024) /* events of "transfers" per res item */
/* The first chunk of the zone requests are unpacked into, kept between them:
 * a "transfers" of 1,000 unpacks into ~150 KiB (the largest, 8,192, spill
 * into more chunks, freed after it). */
#define RESOLVER_REQ_ZONE_CHUNK_BYTES (256 * 1024)

typedef struct {
	unsigned long long opslimit;
	size_t memlimit;
} resolver_pwcost_t;

/* A new account's number and key, drawn and stored before its event is made. */
typedef struct {
	uint64_t account;
	uint8_t key[KEYSTORE_KEY_BYTES];
} resolver_newkey_t;

#define RESOLVER_SEALED_BUF_BYTES (64u << 10) /* sealed.c's write buffer */

/* sealed.c's file of the accounts' sealed emails. */
typedef struct {
	int fd;           /* -1: none, the ledger keeps them in memory */
	uint64_t flushed; /* bytes written to the file */
	uint8_t *buf;     /* bytes appended after those, not written yet */
	size_t buf_n;
} resolver_sealed_t;

typedef struct resolver {
	uv_loop_t *loop;
	const char *data_dir;     /* where the snapshots are */
	ledger_t *ledger;
	keystore_t keys;          /* DATA/keys, the only writer (keys.c) */
	resolver_sealed_t sealed; /* the ledger's sealed emails (sealed.c) */
	peer_server_t session;    /* RUN/resolver.sock: one bus session at a time */
	uint64_t epoch;           /* bumped by each session, reset and load: results of
	                           * password jobs begun in an earlier epoch are dropped */
	resolver_pwcost_t cost;
	char dummy_hash[LEDGER_PWHASH_BYTES_MAX]; /* for unknown accounts */
	msg_buf_t items;          /* encoded "res" items not yet sent */
	uint32_t item_count;
	msg_buf_t cmd_reply, cmd_ev, cmd_mail; /* commands.c's, emptied and reused by each
	                                        * command (no allocation per command) */
	msgpack_zone req_zone;    /* each request is unpacked into it, then it is cleared:
	                           * its first chunk (RESOLVER_REQ_ZONE_CHUNK_BYTES) stays */
	msg_buf_t bulk_results, bulk_evs, bulk_reply; /* bulk.c's, reused by each "transfers" */
	unsigned jobs_running;    /* password hashing jobs in the pool */
	uint64_t stat_replayed;   /* events applied by replay (figures) */
	/* pwhash.c's continuations, registered by resolver.c (commands.c's) */
	void (*hashed_cb)(struct resolver *r, uint64_t cid, const ledger_cmd_t *cmd,
	                  const char *pwhash, const resolver_newkey_t *nk);
	void (*duplicate_cb)(struct resolver *r, uint64_t cid, uint64_t id,
	                     const ledger_key_entry_t *prior);
	/* and dryrun.c's, for a keyed dry run whose password was checked */
	void (*dry_duplicate_cb)(struct resolver *r, uint64_t cid, uint64_t id,
	                         const ledger_key_entry_t *prior);
	void (*dry_error_cb)(struct resolver *r, uint64_t cid, uint64_t id, proto_err_t err);
} resolver_t;

/* Parses "interactive", "moderate" or "min"; -EINVAL otherwise. */
int resolver_pwcost_parse(const char *name, resolver_pwcost_t *out);

/* Sets up the state and listens on run_dir/resolver.sock. */
int resolver_start(resolver_t *r, uv_loop_t *loop, const char *run_dir);

/* Stops listening (removing resolver.sock) and ends the bus session. */
void resolver_stop(resolver_t *r);

/* Handles one client request (cid from the bus, r the request bytes). */
void resolver_handle_request(resolver_t *r, uint64_t cid, const char *req, size_t len);

/* results.c: sends the items collected so far as one "res" frame to the bus. */
void resolver_flush(resolver_t *r);

/*
 * results.c: adds one result item. reply: the complete reply map bytes;
 * ev/mail: an event and its mail details (NULL when none); wait_seq: the
 * durable sequence number the bus must reach before answering.
 */
void resolver_emit(resolver_t *r, uint64_t cid, uint64_t wait_seq, const msg_buf_t *reply,
                   const msg_buf_t *ev, const msg_buf_t *mail);

/*
 * results.c: adds one item carrying n consecutive events (evs: their packed
 * bin values, the first of seq first) and, when reply is not NULL, the
 * reply (wait: the state's last seq); without it, wait is the last event's.
 */
void resolver_emit_events(resolver_t *r, uint64_t cid, const msg_buf_t *reply, uint64_t first,
                          const msg_buf_t *evs, uint32_t n);

/* results.c: packs and emits an error reply. */
void resolver_emit_error(resolver_t *r, uint64_t cid, uint64_t id, proto_err_t err,
                         const char *message);

/* commands.c: resolve a checked command into an event and emit it. */
void resolver_run_command(resolver_t *r, uint64_t cid, const ledger_cmd_t *cmd);
/* Emits the original reply of a keyed command seen before. */
void resolver_emit_duplicate(resolver_t *r, uint64_t cid, uint64_t id,
                             const ledger_key_entry_t *prior);
/* Resolves and applies a new account (password already hashed, key stored). */
void resolver_open_account(resolver_t *r, uint64_t cid, const ledger_cmd_t *cmd,
                           const char *pwhash, const resolver_newkey_t *nk);

/* commands.c: a uniformly random 16-digit account number not in use. */
uint64_t resolver_new_account_number(const ledger_t *l);

/* dryrun.c: answers a command with "dry_run": true; changes nothing. */
void resolver_dry_run(resolver_t *r, uint64_t cid, const ledger_cmd_t *cmd);
/* The dry-run forms of resolver_emit_duplicate and an error reply. */
void resolver_dry_duplicate(resolver_t *r, uint64_t cid, uint64_t id,
                            const ledger_key_entry_t *prior);
void resolver_dry_error(resolver_t *r, uint64_t cid, uint64_t id, proto_err_t err);

/* bulk.c: resolves a "transfers" request map (docs/protocol.md). */
void resolver_run_transfers(resolver_t *r, uint64_t cid, const msgpack_object *map);

/* queries.c: answer a state query. */
void resolver_run_query(resolver_t *r, uint64_t cid, const ledger_cmd_t *cmd);

/*
 * pwhash.c: password work in libuv's thread pool. A hash made goes to
 * r->hashed_cb; a keyed retry whose password matches to r->duplicate_cb.
 */
void resolver_hash_then_open(resolver_t *r, uint64_t cid, const ledger_cmd_t *cmd);
void resolver_verify_then_reply(resolver_t *r, uint64_t cid, const ledger_cmd_t *cmd,
                                const ledger_account_t *a, const ledger_key_entry_t *prior);

/* sealed.c: opens the sealed emails' file (a failure only warns: memory then). 0. */
int resolver_sealed_open(resolver_t *r);
/* sealed.c: makes the empty ledger l keep its sealed emails in the file. */
void resolver_sealed_attach(resolver_t *r, ledger_t *l);
/* sealed.c: empties the file (no ledger refers to it any more). */
void resolver_sealed_truncate(resolver_t *r);

/* keys.c: opens DATA/keys for writing (created when missing). 0 or -errno. */
int resolver_keys_open(resolver_t *r);
/* keys.c: sets cmd->email_id (open_account) to the keyed hash of its email, in id. */
void resolver_email_id(const resolver_t *r, ledger_cmd_t *cmd,
                       char id[LEDGER_EMAIL_ID_CHARS + 1]);
/* keys.c: replaces an account_opened event's plain email by its hash and sealed form. */
void resolver_seal_email(const resolver_t *r, ledger_event_t *ev,
                         const uint8_t key[KEYSTORE_KEY_BYTES]);
/* keys.c: an account's email into out: 0, -ENOENT (erased, or its key is gone), -EBADMSG. */
int resolver_account_email(const resolver_t *r, const ledger_account_t *a,
                           char out[LEDGER_EMAIL_BYTES_MAX + 1]);
/* keys.c: destroys account's key (none is fine): 0 or -errno. */
int resolver_destroy_key(resolver_t *r, uint64_t account);

/* results.c: the time in ms since the epoch, never before the last event's. */
int64_t resolver_now_ms(const resolver_t *r);

#endif
