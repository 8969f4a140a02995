/*
 * spool.h - the mailer's durable spool: one file per accepted mail, in
 * DATA/mail/queue/ while it waits for delivery and in DATA/mail/dead/ when it
 * failed for good; and the address book (account -> email) in
 * DATA/mail/addresses. The file formats are described at the top of spool.c.
 *
 * Used by esbank-mailer and by the client's `esbank mail` (which reads the
 * same files and re-queues dead mails); no libuv, no libcurl here.
 */
#ifndef ESBANK_COMMON_SPOOL_H
#define ESBANK_COMMON_SPOOL_H

#include "ledger.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SPOOL_PATH_MAX 4096
#define SPOOL_MESSAGE_BYTES_MAX 8192   /* the RFC 5322 text (MESSAGE_BYTES_MAX) */
#define SPOOL_FILE_BYTES_MAX 12288     /* a whole spool file */
#define SPOOL_SUBJECT_BYTES_MAX 200
#define SPOOL_REASON_BYTES_MAX 400     /* cut longer reasons */
#define SPOOL_ADDRS_MAX (1u << 24)     /* accounts in the address book */

typedef enum { SPOOL_QUEUE = 0, SPOOL_DEAD = 1 } spool_box_t;

/* One mail, as in a spool file. Strings are NUL-terminated. */
typedef struct {
	uint64_t seq;             /* the event's seq: the mail's id */
	ledger_event_type_t type;
	int64_t ts_ms;            /* the event's time */
	char to[LEDGER_EMAIL_BYTES_MAX + 1];
	char subject[SPOOL_SUBJECT_BYTES_MAX + 1];
	int64_t accepted_ms;      /* when spooled (or re-queued): the age counts from here */
	uint32_t attempts;        /* dead only: delivery attempts made */
	char reason[SPOOL_REASON_BYTES_MAX + 1]; /* dead only: why; "" otherwise */
	size_t msg_len;
	char msg[SPOOL_MESSAGE_BYTES_MAX];       /* the RFC 5322 message, CRLF lines */
} spool_entry_t;

/* An address book slot; email NULL when free. */
typedef struct {
	uint64_t account;
	char *email;
} spool_addr_t;

/* An open spool. Invariant: mail/, queue/ and dead/ exist and their fds are open. */
typedef struct {
	char dir[SPOOL_PATH_MAX]; /* DATA/mail */
	int dir_fd, queue_fd, dead_fd;
	int addr_fd;              /* DATA/mail/addresses, append; -1 when not loaded */
	bool queue_dirty;         /* unlinks in queue/ not yet fsync'd */
	bool addr_dirty;          /* appends to addresses not yet fsync'd */
	bool addr_broken;         /* a write or fsync of addresses failed: rewrite it whole */
	spool_addr_t *addrs;      /* open addressing on account */
	size_t addr_cap, addr_n;
} spool_t;

/* Opens DATA/mail (creating it, queue/ and dead/, mode 0700). 0 or -errno. */
int spool_open(spool_t *s, const char *mail_dir);
void spool_close(spool_t *s);

/* Encodes / decodes a spool file. Encode: 0 or -ENOBUFS; decode: 0 or -EBADMSG. */
int spool_encode(const spool_entry_t *e, char *buf, size_t cap, size_t *len);
int spool_decode(const char *buf, size_t len, spool_entry_t *e);

/*
 * Writes e as queue/<seq>: queue/.tmp-<seq>, fsync, rename. The directory is
 * fsync'd by spool_sync(). 0 or -errno.
 */
int spool_put(spool_t *s, const spool_entry_t *e);

/*
 * fsyncs queue/ and the address book when they changed. 0 or -errno. After
 * a failed fsync of queue/, the names written since the last good one may be
 * lost even if a later fsync succeeds: the caller must spool_put() those
 * mails again (the mailer does: the batch is not acknowledged and the bus
 * sends it again). After a failed write or fsync of the address book, it is
 * written whole to a new file that replaces it (see spool.c), never fsync'd
 * a second time.
 */
int spool_sync(spool_t *s);

/* Reads box/<seq> into *e. 0, -ENOENT, -EBADMSG or another -errno. */
int spool_read(spool_t *s, spool_box_t box, uint64_t seq, spool_entry_t *e);

/* True when box/<seq> exists. */
bool spool_exists(spool_t *s, spool_box_t box, uint64_t seq);

/* Marks a mail sent: unlinks queue/<seq> (fsync'd by spool_sync()). */
int spool_remove(spool_t *s, uint64_t seq);

/*
 * Moves a mail to dead/ with reason and attempts: writes dead/<seq>
 * (tmp, fsync, rename, fsync dead/), then unlinks queue/<seq>. 0 or -errno.
 */
int spool_bury(spool_t *s, spool_entry_t *e, const char *reason, uint32_t attempts);

/*
 * Moves dead/<seq> back to queue/<seq> with accepted_ms = now_ms and no
 * reason (written, fsync'd, renamed, then the dead file is removed).
 * 0, -ENOENT or -errno.
 */
int spool_requeue(spool_t *s, uint64_t seq, int64_t now_ms);

/*
 * The seqs of box's files, ascending, in a malloc'd array (*seqs, *n; free
 * it). Files not named by a seq (temporary files) are skipped. 0 or -errno.
 */
int spool_list(spool_t *s, spool_box_t box, uint64_t **seqs, size_t *n);

/*
 * Address book. spool_addr_load() reads DATA/mail/addresses (a torn last
 * line, from a crash, is cut off) and opens it for appending.
 * spool_addr_learn() records account -> email, appending a line when it is
 * new or changed (fsync'd by spool_sync()); a failed append is not an error
 * here: the book is then rewritten whole by spool_sync(). 0 or -errno.
 */
int spool_addr_load(spool_t *s);
int spool_addr_learn(spool_t *s, uint64_t account, const char *email);
/* The address of account, or NULL. */
const char *spool_addr_find(const spool_t *s, uint64_t account);
/*
 * Forgets account's address (account_erased): gone from memory at once (its
 * bytes wiped), and from the file at the next spool_sync(), which writes
 * the book anew without it. 0 (also when none was known).
 */
int spool_addr_forget(spool_t *s, uint64_t account);

/* Replaces control characters in s by ' ' (a reason must stay on one line). */
void spool_one_line(char *s);

#endif
