/*
 * index.h - the account index, DATA/account.idx: every durable event that
 * moves money, one fixed-size entry per account it touches, each pointing
 * back to the same account's previous entry, so a statement walks one
 * account's entries only. A derived file: never fsync'd, checked and caught
 * up from the log at start-up, rebuilt from it when missing or damaged. The
 * format is at the top of index.c; docs/formats.md has it too.
 *
 * The file does I/O but knows nothing of event loops: logger/statement.c
 * drives it. Entries are appended to a buffer (index_add) and written with
 * one pwrite per durable batch (index_flush); walks (index_walk) read only
 * written entries, through a read-only shared mapping made once the file is
 * checked (so a statement costs no system call per entry; pread when the
 * mapping could not be made), so they may run in a worker thread while the
 * loop thread appends. The file is never cut while it is mapped but by a
 * failed flush, and only past the written entries.
 *
 * Invariants of index_t: written <= entries; an account's slot holds the
 * number of its last entry (1-based; 0 when it has none) and its balance
 * after it; every entry's prev is the number of an earlier entry of the
 * same account, or 0; last_seq is the last event folded in (an event that
 * moves no money has no entry but still counts).
 */
#ifndef ESBANK_LOGGER_INDEX_H
#define ESBANK_LOGGER_INDEX_H

#include "logfile.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define INDEX_FILE_NAME "account.idx"
#define INDEX_TABLE_NAME "account.idx.tab"
#define INDEX_HEADER_BYTES 8
#define INDEX_ENTRY_BYTES 64
/* Entries waiting to be written; beyond this (a disk that keeps failing)
 * indexing stops until the next start, which catches up from the log. */
#define INDEX_BUFFER_BYTES_MAX (64 * 1024 * 1024)
/* Entries read per pread when scanning the file at start-up. */
#define INDEX_SCAN_ENTRIES_MAX 16384
/* The read-only mapping of the index that walks read (virtual space only:
 * the file grows into it; 4 G entries). Without it walks use pread. */
#define INDEX_MAP_BYTES_MAX ((size_t)1 << 38)
/* A statement page, at most (the protocol's limit). */
#define INDEX_PAGE_MAX 10000

typedef struct {
	uint64_t seq;
	int64_t ts_ms;
	uint64_t account;
	uint64_t counterparty; /* 0: none (a withdrawal, the opening) */
	int64_t amount;        /* signed: negative when money leaves */
	int64_t balance;       /* the account's balance after it */
	uint64_t prev;         /* the account's previous entry (1-based), 0: none */
	uint8_t type;          /* ledger_event_type_t */
} index_entry_t;

typedef struct {
	uint64_t account; /* 0: a free slot */
	uint64_t last;    /* its last entry, 0: none (dropped at start-up) */
	int64_t balance;  /* after it */
} index_slot_t;

typedef struct {
	int fd;
	char *path;
	char *table_path;
	uint64_t entries;   /* entries held, written or buffered */
	uint64_t written;   /* entries on disk (readable by walks) */
	uint64_t last_seq;  /* the last event folded in */
	index_slot_t *slots;
	size_t slots_cap;   /* a power of two */
	size_t slots_used;
	char *buf;          /* encoded entries written + 1 .. entries */
	size_t buf_len, buf_cap;
	bool broken;        /* a write kept failing: no more appends until restart */
	const uint8_t *map; /* INDEX_MAP_BYTES_MAX of the file, read-only; NULL: none */
} index_t;

/* What index_open found and did, for the logger to report. */
typedef struct {
	bool created;          /* no usable file: a new one (rebuilt from the log) */
	bool table_loaded;     /* the table file was current: no full scan */
	uint64_t cut_entries;  /* entries dropped (torn, damaged, ahead of the log) */
	uint64_t caught_up;    /* events read from the log and folded in */
} index_report_t;

/*
 * Opens DIR/account.idx (creating it when absent or not an index), loads or
 * rebuilds the account table, drops what does not agree with lf (a torn or
 * damaged tail, entries past lf's end, the last event's entries, which are
 * derived again) and folds in every event of lf after it, so the index
 * covers exactly lf's records. Then removes the table file (it is written
 * again at a clean stop). Returns 0 or a negative errno; on error ix is
 * closed.
 */
int index_open(index_t *ix, const char *dir, const logfile_t *lf, index_report_t *rep);
/* Folds in every record of lf after ix->last_seq (an index opened on an
 * earlier view of the same log catches up): 0 or a negative errno. */
int index_catch_up(index_t *ix, const logfile_t *lf, index_report_t *rep);
/* Writes what is buffered and frees ix. */
void index_close(index_t *ix);
/* Writes the table file (a temporary name, then rename; no fsync), so the
 * next start does not scan the whole file: 0 or a negative errno. */
int index_save_table(index_t *ix);

/* Folds in event seq (its log body): the entries of a transfer, a
 * withdrawal or an opening are buffered. seq must be last_seq + 1. An event
 * that does not decode moves no money here. 0, -ENOMEM, or -EIO when ix is
 * broken. */
int index_add(index_t *ix, uint64_t seq, const char *body, size_t len);
/* Writes the buffered entries with one pwrite: 0 or a negative errno (they
 * stay buffered and are tried again at the next flush). */
int index_flush(index_t *ix);

/* The number of account's last entry and its balance; false if the account
 * has none. */
bool index_lookup(const index_t *ix, uint64_t account, uint64_t *last, int64_t *balance);
/* Reads entry n (1-based) with pread: 0, -EBADMSG when its check fails,
 * -ERANGE past the written ones, or a negative errno. */
int index_read(const index_t *ix, uint64_t n, index_entry_t *out);

/* A statement's question. */
typedef struct {
	int64_t since_ms;   /* entries with ts >= since (INT64_MIN: no bound) */
	int64_t until_ms;   /* and ts < until (INT64_MAX: no bound) */
	uint64_t after_seq; /* and seq > after_seq (0: from the start) */
	size_t limit;       /* at most this many, 1..INDEX_PAGE_MAX */
} index_query_t;

/* A statement's answer: out[0..n) the entries, oldest first. */
typedef struct {
	index_entry_t *out; /* room for limit entries, given by the caller */
	size_t n;
	int64_t opening_balance; /* before the period's first entry */
	int64_t closing_balance; /* after the period's last entry */
	bool more;               /* entries of the period after out[n - 1] */
} index_page_t;

/*
 * Walks back from entry last (an account's last written entry) through the
 * account's entries and fills *page for q. Reads only (pread): safe in a
 * worker thread while the loop appends. 0, or a negative errno (-EBADMSG:
 * an entry is damaged).
 */
int index_walk(const index_t *ix, uint64_t last, const index_query_t *q, index_page_t *page);

#endif
