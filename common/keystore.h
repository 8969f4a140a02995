/*
 * keystore.h - DATA/keys: each account's data key, and the server secret of
 * the keyed email hash (the format is at the top of keystore.c).
 *
 * The resolver is the only writer on a primary or a single group: it adds
 * an account's key (written and fdatasync'd before the account_opened event
 * that needs it leaves the resolver) and destroys it on erase_account (the
 * slot overwritten with zeros and fdatasync'd). On a standby the replicator
 * is the only one that appends (the keys it follows, replicator/keys.c) and
 * the resolver only destroys (a replayed account_erased); at a promotion the
 * replicator writes every key it followed before the takeover, and the
 * resolver's next keystore_reserve() catches up with them. The mailer and
 * the offline tools only read.
 *
 * Invariants of keystore_t:
 *   - every slot below slots_n is either in the index (a live key) or not
 *     (zeros, a torn write, or a key destroyed);
 *   - the index is at most half full; its capacity a power of two.
 */
#ifndef ESBANK_KEYSTORE_H
#define ESBANK_KEYSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEYSTORE_KEY_BYTES 32    /* crypto_aead_xchacha20poly1305_ietf_KEYBYTES */
#define KEYSTORE_SECRET_BYTES 32 /* the keyed email hash's key */
#define KEYSTORE_HASH_BYTES 32   /* the keyed email hash */
#define KEYSTORE_HEADER_BYTES 64
#define KEYSTORE_SLOT_BYTES 64
#define KEYSTORE_SLOTS_MAX (1u << 28) /* 16 GiB of slots: far above any bank here */
#define KEYSTORE_FILE "keys"
#define KEYSTORE_HOLE_SLOTS_MAX 4096 /* a reader reads zero slots again this far back */

typedef struct {
	uint64_t account; /* 0: empty */
	uint32_t slot;
} keystore_entry_t;

typedef struct {
	int fd;
	bool writable;
	uint8_t secret[KEYSTORE_SECRET_BYTES];
	uint32_t slots_n;          /* slots in the file, or reserved for a write */
	keystore_entry_t *index;   /* open addressing: account -> slot */
	uint32_t index_mask, index_used;
	uint32_t bad_slots;        /* torn or damaged slots seen when opened */
	uint32_t dup_slots;        /* slots that named an account already indexed */
	uint32_t scan_from;        /* keystore_catch_up() reads from this slot on */
} keystore_t;

/*
 * Opens data_dir/keys. writable: creates it when missing (a new random
 * secret, written to a temporary name, fsync'd, renamed, the directory
 * fsync'd) and opens it for writing. Read-only on a missing file: -ENOENT.
 * Returns 0, -EINVAL for a file that is not a key store (wrong magic,
 * version or header checksum), or -errno.
 */
int keystore_open(keystore_t *ks, const char *data_dir, bool writable);
/* Read-only: reads the slots again (the writer adds and destroys). 0 or -errno. */
int keystore_refresh(keystore_t *ks);
/*
 * Indexes the slots another process appended since the last scan. A
 * writer reads from slots_n (its own reservations are below it; the other
 * process, a standby's replicator, appends whole slots one at a time). A
 * reader reads from scan_from: a slot that was zeros when last read (a
 * reservation not yet written) is read again, for KEYSTORE_HOLE_SLOTS_MAX
 * slots back. slots_n only grows. 0 or -errno.
 */
int keystore_catch_up(keystore_t *ks);
/* The same from the first slot: for a key not found after keystore_catch_up
 * (a hole older than KEYSTORE_HOLE_SLOTS_MAX slots filled since). 0 or -errno. */
int keystore_rescan(keystore_t *ks);
/*
 * Makes data_dir/keys hold secret (a standby takes the primary's): creates
 * it when missing; nothing to do when it holds that secret; replaces a store
 * with another secret that holds no key; -EEXIST when it holds keys under
 * another secret (nothing is changed). 0 or -errno. No process may have the
 * store open.
 */
int keystore_adopt_secret(const char *data_dir, const uint8_t secret[KEYSTORE_SECRET_BYTES]);
/* Closes it and wipes the secret; ks may be zeroed or already closed. */
void keystore_close(keystore_t *ks);

/*
 * Reserves the next slot for a key that keystore_write_slot() will write
 * (from any thread: it touches only the fd). Loop thread. UINT32_MAX when
 * the store is full (KEYSTORE_SLOTS_MAX).
 */
uint32_t keystore_reserve(keystore_t *ks);
/* Writes account's key into slot and fdatasyncs the file. 0 or -errno. */
int keystore_write_slot(int fd, uint32_t slot, uint64_t account,
                        const uint8_t key[KEYSTORE_KEY_BYTES]);
/* Records that slot holds account's key (after a successful write). 0 or -ENOMEM. */
int keystore_index_add(keystore_t *ks, uint64_t account, uint32_t slot);

/* Reserve, write and index in one step (loop thread, blocking). 0 or -errno. */
int keystore_put(keystore_t *ks, uint64_t account, const uint8_t key[KEYSTORE_KEY_BYTES]);

/* Reads account's key: 0, -ENOENT (none: never stored, or destroyed), -errno. */
int keystore_get(const keystore_t *ks, uint64_t account, uint8_t key[KEYSTORE_KEY_BYTES]);

/* Overwrites account's slot with zeros and fdatasyncs: 0, -ENOENT, -errno. */
int keystore_destroy(keystore_t *ks, uint64_t account);

/* The keyed hash (BLAKE2b-256 under the secret) of a normalised email. */
void keystore_email_hash(const keystore_t *ks, const char *email, size_t n,
                         uint8_t out[KEYSTORE_HASH_BYTES]);

#endif
