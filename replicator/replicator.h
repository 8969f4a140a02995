/*
 * replicator.h - esbank-replicator: the event log on a NATS JetStream stream
 * (docs/replication.md; its peer messages in docs/peers.md, Replicator).
 *
 * Files of the program, by concern:
 *   main.c       usage, options, hand-off to repl_run() or rejoin_run()
 *   replicator.c the process: the bus socket (common/peer.h), signals, the
 *                start-up (connect, stream, tail) off the loop, the inbox of
 *                what nats.c's threads report, shutdown
 *   serve.c      the bus session's messages in: append, from, promote,
 *                receipts (the mailer's deliveries, published as they come)
 *   publish.c    primary mode: records -> stream messages, pipelined async
 *                publishes fenced by the expected last stream sequence,
 *                acks, resync after an error, fenced; the heartbeat
 *   follow.c     standby mode: the stream read from a seq, follow events,
 *                the primary's heartbeat, --auto-promote
 *   promote.c    the takeover record, fenced by the stream's last sequence
 *   out.c        the messages out to the bus
 *   js.c         everything that calls nats.c: connect, stream, tail, get,
 *                publish, subscribe; nats.c's threads report through the
 *                inbox (js_note_t) and uv_async_send
 *   batch.c      the stream message codec (pure): records <-> message
 *   rejoin.c     --rejoin: cut the local log after the last record the
 *                stream also has
 *   jobs.c       the off-loop job runner (repl_job_start), repl_seqs_add: a leaf
 *   keys.c       DATA/keys carried by the stream NAME_KEYS: the primary's
 *                puts and purges before a log message, the secret, the
 *                standby's follow into DATA/keys, --rejoin's secret
 *   jskeys.c     the calls of nats.c on NAME_KEYS (and its format)
 * Calls run one way: main -> replicator -> serve -> publish, follow,
 * promote -> keys -> out, js, jskeys, batch, jobs.
 *
 * Threads: everything in repl_t is the loop thread's, except the inbox
 * (js.c, under its mutex) and what a uv_work_t's worker reads while its
 * job runs (the connection and JetStream context, which nats.c makes safe
 * to share, and the job's own fields).
 *
 * Invariants (primary): acked_seq <= accepted_seq; the message list holds
 * the records acked_seq + 1 .. accepted_seq in order, published ones first;
 * accepted_chain is the chain hash of accepted_seq; nothing is reported
 * replicated before JetStream acknowledged the message holding it.
 */
#ifndef ESBANK_REPLICATOR_H
#define ESBANK_REPLICATOR_H

#include "keystore.h"
#include "logfile.h"
#include "peer.h"

#include <nats/nats.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define REPL_SOCK_NAME "replicator.sock"
#define REPL_MSG_BYTES_MAX 1000000   /* one stream message's records (max_msg_size 1 MiB) */
#define REPL_INFLIGHT_MAX 64         /* stream messages published and not acknowledged */
#define REPL_PENDING_BYTES_MAX (64 * 1024 * 1024) /* records waiting: reading the bus pauses */
#define REPL_FOLLOW_BYTES_MAX (16 * 1024 * 1024)  /* followed messages the loop has not taken */
#define REPL_PUBLISH_WAIT_MS 5000    /* an ack (or a JetStream API reply) must come by then */
#define REPL_RETRY_MS 500            /* start-up, resync, follow: the wait before a retry */
#define REPL_HEARTBEAT_MS 500        /* a primary's heartbeat on NAME.hb */
#define REPL_NODE_BYTES_MAX 128      /* a group's name */
#define REPL_NAME_BYTES_MAX 64       /* the stream's name */
#define REPL_SUBJECT_BYTES_MAX (REPL_NAME_BYTES_MAX + 16) /* NAME.receipts, NAME_MAIL */
#define REPL_RECEIPT_SEQS_MAX 4096   /* seqs in one receipts message from the bus */
#define REPL_SEQS_CAP_MIN 64         /* a repl_seqs_t's first allocation */
#define REPL_URLS_MAX 16             /* --nats URL,URL,... */
#define REPL_HEX_BYTES (2 * LOGFILE_HASH_BYTES + 1)
#define REPL_TEXT_BYTES_MAX 256      /* an error's text */
#define REPL_MSG_ID_BYTES_MAX 48     /* "<first>-<last>" */
#define REPL_PRIMARY_LOOKBACK_MAX 64 /* stream messages searched for the fencing primary's name */

typedef enum { REPL_MODE_PRIMARY, REPL_MODE_STANDBY } repl_mode_t;

typedef struct {
	const char *data_dir;
	const char *run_dir;
	const char *nats_urls; /* comma-separated */
	const char *stream;
	uint64_t replicas;
	const char *node;
	repl_mode_t mode;
	uint64_t auto_promote_ms; /* 0: never */
} repl_config_t;

/* The stream's tail: its last message and the last record in it. */
typedef struct {
	uint64_t stream_seq;                  /* the stream's last sequence (0: empty) */
	uint64_t last;                        /* the last event seq in it (0: none) */
	uint8_t head[LOGFILE_HASH_BYTES];     /* the chain hash at last */
	char primary[REPL_NODE_BYTES_MAX];    /* the node of the last takeover record in
	                                       * that message ("" if none) */
} repl_tail_t;

/* A set of event seqs (the mail receipts read by a promotion), unordered;
 * or keys.c's ops on NAME_KEYS, in order. */
typedef struct {
	uint64_t *v;
	size_t n, cap;
} repl_seqs_t;

/* One stream message of the primary: records first..last. */
typedef struct repl_msg {
	struct repl_msg *next;
	uint64_t first, last;
	uint64_t expect;                  /* Nats-Expected-Last-Sequence it was sent with */
	uint64_t stream_seq;              /* once acknowledged */
	uint64_t sent_ms;                 /* loop time of the last publish */
	bool sent, acked;
	uint8_t head[LOGFILE_HASH_BYTES]; /* the chain hash at last */
	char *buf;                        /* the records' bytes */
	size_t len, cap;
	repl_seqs_t keys;                 /* keys.c's ops for its events (puts, purges) */
	size_t keys_done;                 /* how many of them NAME_KEYS acknowledged */
} repl_msg_t;

/* What nats.c's threads report to the loop (js.c's inbox). */
typedef enum {
	JS_NOTE_ACK,          /* a publish was acknowledged */
	JS_NOTE_PUB_ERROR,    /* a publish failed */
	JS_NOTE_FOLLOW,       /* a message of the followed stream */
	JS_NOTE_HEARTBEAT,    /* a primary's heartbeat */
	JS_NOTE_DISCONNECTED,
	JS_NOTE_RECONNECTED,
} js_note_kind_t;

typedef struct js_note {
	struct js_note *next;
	js_note_kind_t kind;
	uint64_t first, last;     /* ACK / PUB_ERROR: the message's records (its msg id) */
	uint64_t stream_seq;      /* ACK, FOLLOW: the stream sequence */
	uint64_t pending;         /* FOLLOW: messages after it in the consumer's view */
	uint64_t gen;             /* FOLLOW: the subscription it came from */
	bool duplicate;           /* ACK: the stream had the msg id already */
	int err_code;             /* PUB_ERROR: JetStream's error code (10071: wrong last seq) */
	char text[REPL_TEXT_BYTES_MAX];
	natsMsg *msg;             /* FOLLOW: owned by the note */
} js_note_t;

typedef struct {
	pthread_mutex_t lock;
	js_note_t *head, *tail;
	size_t follow_bytes;      /* FOLLOW data not yet taken by the loop */
	pthread_cond_t room;      /* signalled when follow_bytes drops */
	bool closing;
	uv_async_t wake;
} js_inbox_t;

typedef struct repl repl_t;

/* A blocking job run by libuv's thread pool, its result handed back on the loop. */
typedef struct {
	uv_work_t work;
	repl_t *r;
	bool busy;
	int result;
	repl_tail_t tail;
	uint64_t arg, out;
	repl_seqs_t seqs;         /* promote: the receipts in NAME_MAIL */
	char text[REPL_TEXT_BYTES_MAX];
} repl_job_t;

struct repl {
	uv_loop_t *loop;
	repl_config_t cfg;
	char log_subject[REPL_SUBJECT_BYTES_MAX];
	char hb_subject[REPL_SUBJECT_BYTES_MAX];
	char mail_stream[REPL_SUBJECT_BYTES_MAX];      /* NAME_MAIL */
	char receipts_subject[REPL_SUBJECT_BYTES_MAX]; /* NAME.receipts */
	char keys_stream[REPL_SUBJECT_BYTES_MAX];      /* NAME_KEYS */
	char *sock_path;
	peer_server_t bus;
	uv_signal_t sigterm, sigint;
	uv_timer_t retry_timer;
	uv_timer_t tick;          /* heartbeat (primary), auto-promote check (standby) */
	bool stopping;
	bool ready;               /* connected, stream there, tail read */
	bool greeted;             /* hello sent in this session */
	repl_mode_t mode;
	bool fenced;
	bool fault_sent;          /* fault reported, no replicated since (out.c) */
	char fault_why[REPL_TEXT_BYTES_MAX]; /* its text, or the fence's (the next hello's "fault") */
	repl_job_t start_job;

	/* js.c */
	natsConnection *nc;
	jsCtx *js;
	natsSubscription *follow_sub;
	natsSubscription *hb_sub;
	uint64_t follow_gen;
	js_inbox_t inbox;

	/* publish.c: primary mode */
	uint64_t accepted_seq;
	uint8_t accepted_chain[LOGFILE_HASH_BYTES];
	uint64_t acked_seq;
	uint8_t acked_chain[LOGFILE_HASH_BYTES];
	uint64_t stream_seq;      /* the stream's last sequence as we know it */
	uint64_t next_expect;     /* the expected last sequence of the next message sent */
	repl_msg_t *msgs, *msgs_tail;
	size_t inflight;
	size_t pending_bytes;
	bool resyncing;
	bool paused;
	repl_job_t resync_job;
	uint64_t stat_msgs, stat_events;

	/* follow.c: standby mode */
	repl_tail_t tail;         /* the stream's tail as far as we know (the hello) */
	uint64_t follow_from;     /* the bus's "from": events before it are not sent */
	uint64_t followed_seq;    /* the last event seq delivered or skipped */
	uint8_t followed_chain[LOGFILE_HASH_BYTES];
	bool followed_chain_known;
	uint64_t followed_stream_seq;
	uint64_t stream_last_seen; /* the stream's last sequence, as far as we know */
	uint64_t last_hb_ms;
	char primary[REPL_NODE_BYTES_MAX];
	uint64_t primary_seq;
	repl_job_t follow_job;

	/* keys.c: DATA/keys (read-only on a primary, written on a standby) and
	 * what the standby has followed of NAME_KEYS; keys, keys_q and
	 * keys_writer are a worker's (one job at a time, under keys_lock) */
	keystore_t keys;
	bool keys_open;
	bool keys_writer;         /* standby: this process appends followed keys */
	uint64_t keys_q;          /* the last NAME_KEYS sequence applied */
	pthread_mutex_t keys_lock;
	repl_job_t keys_job;      /* primary: the puts and purges before a message */
	repl_job_t keys_follow_job; /* standby: NAME_KEYS read into DATA/keys */
	uv_timer_t keys_timer;    /* primary: a failed put tried again */

	/* promote.c */
	repl_job_t promote_job;
	uint64_t promote_cid;
	uint64_t takeover_seq;    /* after a promotion: the takeover record's seq */
};

/* replicator.c */
/* Runs the replicator until SIGTERM/SIGINT; returns the process exit code. */
int repl_run(const repl_config_t *cfg);

/* jobs.c */
/* Runs fn on libuv's thread pool, then done on the loop; false if busy. */
bool repl_job_start(repl_t *r, repl_job_t *j, uv_work_cb fn, uv_after_work_cb done);
/* Appends v to set (grown as needed): 0 or -ENOMEM. */
int repl_seqs_add(repl_seqs_t *set, uint64_t v);

/* serve.c */
extern const peer_handler_t repl_handlers[];
/* The notes nats.c's threads reported, handled in order (frees them). */
void serve_notes(repl_t *r, js_note_t *notes);

/* publish.c */
int publish_init(repl_t *r, const repl_tail_t *tail);
void publish_free(repl_t *r);
/* Takes the append's events first..: 0, or -EPIPE on a gap or a mismatch
 * with the bus's prev (the session is to end). */
int publish_append(repl_t *r, uint64_t first, const msgpack_object *events, const char *prev);
void publish_session_closed(repl_t *r);
void publish_ack(repl_t *r, const js_note_t *n);
void publish_error(repl_t *r, const js_note_t *n);
void publish_reconnected(repl_t *r);
void publish_heartbeat(repl_t *r);
/* After a takeover: primary from the record seq, at stream sequence q. */
void publish_take_over(repl_t *r, uint64_t seq, const uint8_t chain[LOGFILE_HASH_BYTES],
                       uint64_t q);
/* True while messages wait for their acks (the hello waits for them). */
bool publish_busy(const repl_t *r);

/* follow.c */
void follow_init(repl_t *r, const repl_tail_t *tail);
void follow_from(repl_t *r, uint64_t seq);
void follow_message(repl_t *r, js_note_t *n);
void follow_heartbeat(repl_t *r, const js_note_t *n);
void follow_tick(repl_t *r);
void follow_stop(repl_t *r);

/* promote.c */
void promote_start(repl_t *r, uint64_t cid);

/* out.c */
void out_hello(repl_t *r, conn_t *bus);
/* Sends the hello to a session that waits for it, once the state is settled:
 * connected, and (primary) no publish waiting for its ack unless it faults. */
void out_maybe_hello(repl_t *r);
void out_replicated(repl_t *r);
/* Both remember what they said (fault_sent, fault_why; fenced: primary) for
 * the next session's hello, then send it to the bus if one is greeted. */
void out_fault(repl_t *r, const char *message);
void out_fenced(repl_t *r, const char *primary, const char *message);
void out_follow(repl_t *r, uint64_t first, const char *const *bodies, const size_t *lens,
                uint32_t n, uint64_t stream_seq);
void out_promoted(repl_t *r, uint64_t cid, uint64_t seq, const char *error,
                  const char *message);
void out_primary(repl_t *r, const char *node, uint64_t seq);
/* A primary's heartbeat (standby): `primary` with "hwm", its replicated seq. */
void out_heartbeat(repl_t *r, const char *node, uint64_t seq);
/* The receipts a promotion read, in messages of at most REPL_RECEIPT_SEQS_MAX. */
void out_receipts(repl_t *r, const repl_seqs_t *set);
void out_hex(const uint8_t h[LOGFILE_HASH_BYTES], char out[REPL_HEX_BYTES]);

/* js.c (the blocking calls run on a worker thread only) */
int js_inbox_init(repl_t *r, uv_async_cb cb);
/* Takes every note reported so far, oldest first (the caller frees them). */
js_note_t *js_inbox_take(repl_t *r);
void js_note_free(repl_t *r, js_note_t *n);
void js_inbox_close(repl_t *r);
int js_connect(repl_t *r, char *text, size_t text_len);  /* blocking */
int js_read_tail(repl_t *r, repl_tail_t *out);          /* blocking */
int js_find(repl_t *r, uint64_t seq, uint64_t last_q, uint64_t *stream_seq); /* blocking */
int js_get(repl_t *r, uint64_t stream_seq, natsMsg **out); /* blocking */
/* Fills t->primary from the last takeover record in the back_max stream
 * messages up to t->stream_seq, if it is empty (blocking). */
void js_last_primary(repl_t *r, repl_tail_t *t, unsigned back_max);
int js_publish_async(repl_t *r, const repl_msg_t *m);
/* Blocking; -EEXIST when fenced (wrong last sequence). */
int js_publish_sync(repl_t *r, const repl_msg_t *m, uint64_t *stream_seq, char *text,
                    size_t text_len);
int js_follow_start(repl_t *r, uint64_t stream_seq, uint64_t gen); /* blocking */
void js_follow_stop(repl_t *r);
int js_heartbeat(repl_t *r, uint64_t seq);
/* Adds every seq of every receipt in NAME_MAIL to set (blocking): 0 or -errno. */
int js_read_receipts(repl_t *r, repl_seqs_t *set);
/* Publishes one receipts message (NAME.receipts in NAME_MAIL; does not wait). */
int js_receipts(repl_t *r, const char *buf, size_t len);
void js_close(repl_t *r);

/* batch.c: the stream message (records back to back, as in events.log) */
typedef int (*batch_record_cb)(uint64_t seq, const char *body, size_t len,
                               const uint8_t hash[LOGFILE_HASH_BYTES], void *arg);
/*
 * Checks a stream message: whole records, seqs consecutive from the first,
 * each hash chained to the one before (the first to *prev when prev is not
 * NULL), and calls cb for each (cb returns non-zero to stop: returned).
 * Returns 0, or -EBADMSG (nothing is handed over past the bad record).
 */
int batch_decode(const char *buf, size_t len, const uint8_t *prev, batch_record_cb cb,
                 void *arg);
/* The msg id of records first..last: "<first>-<last>". */
void batch_msg_id(uint64_t first, uint64_t last, char out[REPL_MSG_ID_BYTES_MAX]);
/* Parses a msg id: 0, or -EINVAL. */
int batch_parse_msg_id(const char *id, uint64_t *first, uint64_t *last);
/* The takeover event's body {"seq","ts","type":"primary_changed","node"}
 * into buf (at most cap bytes): its length, or -E2BIG. */
int batch_takeover_event(uint64_t seq, uint64_t ts_ms, const char *node, char *buf, size_t cap);
/* The node of a primary_changed event body, copied into out; false if not one. */
bool batch_takeover_node(const char *body, size_t len, char *out, size_t out_len);

/* keys.c */
/* Queues the key op of a log record's event body onto m->keys: 0 or -ENOMEM. */
int keys_note_event(repl_msg_t *m, const char *body, size_t len);
/* The job's work: its ops (j->seqs) put or purged in order; j->out: how many. */
void keys_publish_work(uv_work_t *w);
/* Start-up (worker): opens DATA/keys, checks or publishes the secret.
 * 0, -EEXIST (another secret: permanent), or -errno (text says). */
int keys_start(repl_t *r, char *text, size_t text_len);
/* --rejoin: DATA/keys takes the stream's secret. 0 or -errno (said). */
int keys_rejoin(repl_t *r);
/* Standby (worker): NAME_KEYS read to its end into DATA/keys. 0 or -errno. */
int keys_follow_all(repl_t *r);
void keys_stop_writing(repl_t *r);
/* Standby: starts the follow job if none runs (the loop's tick). */
void keys_follow_tick(repl_t *r);

/* jskeys.c (blocking: worker threads only); account 0 is the secret */
int jskeys_ensure(repl_t *r);
int jskeys_read(repl_t *r, uint64_t account, uint8_t out[KEYSTORE_KEY_BYTES]);
int jskeys_write(repl_t *r, uint64_t account, const uint8_t data[KEYSTORE_KEY_BYTES]);
int jskeys_purge(repl_t *r, uint64_t account);
int jskeys_last(repl_t *r, uint64_t *last_q);
int jskeys_get(repl_t *r, uint64_t q, uint64_t *account, uint8_t out[KEYSTORE_KEY_BYTES]);

/* rejoin.c */
int rejoin_run(const repl_config_t *cfg);

#endif
