/*
 * logger.h - esbank-logger: owns events.log (see docs/peers.md, Logger).
 *
 * Files of the program, by concern:
 *   main.c    usage, options, hand-off to logger_run()
 *   logger.c  the process: data and run dirs, the log, the listening socket
 *             (common/peer.h), signals, orderly shutdown
 *   serve.c   the peer messages: append, read, hello / durable / fault out
 *   commit.c  group commit: pending events, one pwrite + fdatasync per batch
 *             in libuv's thread pool, retry with back-off on failure
 *   prealloc.c  zeroed space ahead of the log's end, for commit.c
 *   statement.c  the account index kept up with each durable batch, and the
 *             bus's statements answered from it in the thread pool
 *   indexjob.c  a long log's account index opened in the thread pool
 *             after the start, off the way from start to live
 *   index.c   the account index file, DATA/account.idx (no event loop)
 * Calls run one way: main -> logger -> serve -> indexjob -> statement -> index,
 * and serve -> commit. commit.c tells the
 * files above it what became of a write through logger_commit_cbs_t, which
 * logger.c registers.
 *
 * Invariants of logger_t (loop thread only, except inflight.buf/len/at,
 * which the worker reads while inflight.busy):
 *   lf.last_seq <= inflight.last_seq (when busy) <= accepted_seq;
 *   accepted_chain is the chain hash of accepted_seq;
 *   pending holds encoded records lf.last_seq + 1 .. accepted_seq, minus
 *   those in flight; nothing is acknowledged (durable) before its fdatasync.
 */
#ifndef ESBANK_LOGGER_H
#define ESBANK_LOGGER_H

#include "conn.h"
#include "figures.h"
#include "index.h"
#include "logfile.h"
#include "peer.h"
#include "prealloc.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define LOGGER_SOCK_NAME "logger.sock"
/* Above this many encoded bytes waiting, reading from the sender pauses. */
#define LOGGER_PENDING_BYTES_MAX (64 * 1024 * 1024)
#define LOGGER_RETRY_MIN_MS 100
#define LOGGER_RETRY_MAX_MS 5000
/* A read reply's event bytes, counted with LOGGER_READ_ITEM_OVERHEAD each,
 * stay below this: with the map around them the frame is under 1 MiB. */
#define LOGGER_READ_BYTES_MAX 1000000
#define LOGGER_READ_ITEM_OVERHEAD 5 /* msgpack bin32 header */
#define LOGGER_CID_BYTES_MAX 64     /* a read's correlation id, if a string */
#define LOGGER_HEX_BYTES (2 * LOGFILE_HASH_BYTES + 1)
/* Statements walking the index at once; more are answered overloaded. */
#define LOGGER_STATEMENTS_MAX 8
/* A statement reply's packed entries stay below this (the frame: 1 MiB). */
#define LOGGER_STATEMENT_BYTES_MAX 1000000

typedef struct logger logger_t;

/* A long log's index opened in the thread pool after the start (indexjob.c);
 * owned by indexjob.c, the loop thread only but view/ix/rep/result, which
 * the worker uses while state is RUNNING and a round is queued. */
#define LOGGER_INDEX_SYNC_EVENTS_MAX 200000 /* fewer: opened before listening */
#define LOGGER_INDEX_WAIT_MS 3000 /* after start-up, the job starts by then at the latest */
#define LOGGER_INDEX_LOOP_EVENTS_MAX 20000  /* more new events: another worker round */
typedef enum { LOGGER_INDEX_DONE, LOGGER_INDEX_WAITING, LOGGER_INDEX_RUNNING } logger_index_state_t;
typedef struct {
	logger_t *lg;
	const char *dir;
	logger_index_state_t state;
	uv_timer_t timer;
	bool timer_on;
	uv_work_t work;
	bool opened;        /* ix is open (index_open's round is done) */
	logfile_t view;     /* the log as it was when the round was queued */
	index_t ix;
	index_report_t rep;
	int result;
	uint64_t t0_ns;
} logger_indexjob_t;

/* What commit.c reports upward (registered by logger.c at logger_commit_init). */
typedef struct {
	void (*durable_cb)(logger_t *lg);                    /* a batch is on disk */
	void (*fault_cb)(logger_t *lg, const char *message); /* first failed write */
	void (*written_cb)(logger_t *lg);                    /* after every write */
	/* a batch is on disk: its encoded records, after durable_cb and the next
	 * write's start (so the folding delays neither) */
	void (*batch_cb)(logger_t *lg, const char *buf, size_t len);
} logger_commit_cbs_t;

/* A batch of encoded records: the one being filled or the one in flight. */
typedef struct {
	char *buf;
	size_t len;
	size_t cap;
	size_t events;
	uint64_t last_seq;
	uint8_t head[LOGFILE_HASH_BYTES];
} logger_batch_t;

struct logger {
	uv_loop_t *loop;
	logfile_t lf;
	char *sock_path;
	peer_server_t bus;  /* RUN/logger.sock: one bus session at a time */
	bool greeted;       /* hello sent to the session (delayed while a write is in flight) */
	bool paused;        /* reading from the session stopped: too much pending */
	uv_signal_t sigterm;
	uv_signal_t sigint;
	uv_timer_t retry_timer;
	bool stopping;

	uint64_t accepted_seq;
	uint8_t accepted_chain[LOGFILE_HASH_BYTES];
	logger_batch_t pending;
	logger_batch_t inflight;
	uv_work_t work;
	bool busy;          /* inflight is being written by a worker */
	uint64_t at;        /* file offset of inflight */
	int write_result;   /* set by the worker */
	uint64_t write_ns;  /* time the worker spent in write + fdatasync */
	bool faulted;       /* the last write failed; retry_timer is armed */
	bool fault_sent;    /* fault reported, no durable since */
	uint64_t retry_ms;
	uint64_t session;          /* bumped by each new bus session */
	uint64_t inflight_session; /* the session whose events are in flight */
	logger_commit_cbs_t commit_cbs;
	logger_prealloc_t prealloc; /* owned by prealloc.c, driven by commit.c */

	uint64_t stat_batches;
	uint64_t stat_events;
	uint64_t stat_write_ns;
	uint64_t stat_write_errors;
	figures_hist_t fsync_us;     /* write + fdatasync of each batch written */
	figures_hist_t batch_events; /* events per fdatasync */
	msg_buf_t scratch;  /* read replies are assembled here */
	index_t index;      /* statement.c: the account index, durable events only */
	bool index_ok;      /* it opened; statements are answered */
	bool index_damaged; /* a walk found a bad entry: no table at the stop */
	int statements;     /* statement walks in the thread pool */
	logger_indexjob_t indexjob;

	/* The log's start-up check overlapped with the bus's replay (logger.c,
	 * logfile_open_overlapped): while check is set, lf is the verified
	 * prefix, "durable" goes out as it grows, appends are ignored
	 * (check_skipped) and nothing is written to the file. */
	const char *data_dir;
	logfile_check_t *check;
	uv_async_t check_async; /* the check's threads: a chunk verified */
	uint64_t check_t0;      /* uv_hrtime() at the start of the check */
	uint64_t check_end;     /* the log's last seq as its layout says: the hello's "end" */
	bool check_skipped;     /* an append came during the check */
	bool checked;           /* lf is the whole log, checked */
	int exit_code;          /* the process's, when the check failed */
};

typedef struct {
	const char *data_dir;
	const char *run_dir;
} logger_config_t;

/* Runs the logger until SIGTERM/SIGINT; returns the process exit code. */
int logger_run(const logger_config_t *cfg);

/* serve.c */
/* The bus session's messages: append and read (common/peer.h). */
extern const peer_handler_t logger_handlers[];
void logger_send_hello(logger_t *lg, conn_t *bus);
void logger_broadcast_durable(logger_t *lg);
void logger_broadcast_fault(logger_t *lg, const char *message);

/* statement.c */
/* Opens (checks, catches up) DATA/account.idx: 0, or a negative errno
 * (logged; the logger runs on and statements answer unavailable). */
int logger_index_open(logger_t *lg, const char *dir);
/* Takes ix, opened (r == 0) by index_open() on lf or a view of it and caught
 * up to lf, as the index statements use; r < 0: logged, statements are
 * unavailable. Returns r. */
int logger_index_adopt(logger_t *lg, const char *dir, int r, index_t *ix,
                       const index_report_t *rep);
/* Saves the index's table and closes it. */
void logger_index_close(logger_t *lg);
/* A durable batch's encoded records: folded into the index, written. */
void logger_index_batch(logger_t *lg, const char *buf, size_t len);
/* {"t":"statement"}: the bus asks for an account's statement. */
void logger_on_statement(conn_t *bus, const msgpack_object *m);

/* indexjob.c */
/* Opens the account index now (a short log) or sets the job up to. */
void logger_indexjob_init(logger_t *lg, const char *dir);
/* Starts the waiting job (an append, a statement came). */
void logger_indexjob_kick(logger_t *lg);
/* The logger stops: a job not started never does; closes its timer. */
void logger_indexjob_stop(logger_t *lg);

/* commit.c */
/* Sets up group commit; cbs is copied. 0 or a libuv error. */
int logger_commit_init(logger_t *lg, const logger_commit_cbs_t *cbs);
void logger_commit_free(logger_t *lg);
/* Accepts event seq (the next one) into the pending batch: 0 or -errno. */
int logger_commit_add(logger_t *lg, uint64_t seq, const char *body, size_t len);
/* Starts writing the pending batch unless a write or a retry wait is on. */
void logger_commit_kick(logger_t *lg);
/* Forgets events not yet durable and not in flight (a new bus session). */
void logger_commit_forget(logger_t *lg);

#endif
