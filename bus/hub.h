/*
 * hub.h - internals of esbank-bus, the hub of the group.
 *
 * The bus holds no domain state: it accepts clients on bus.sock, routes each
 * request by its op (routes.c holds the routing table of DESIGN.md), keeps
 * the links to the four peers (peers.c), answers commands only once their
 * events are durable (hold queue), and drives recovery (recovery.c).
 *
 * Invariants:
 *   - durable_seq <= last_seq; events (durable_seq, last_seq] sit in pending
 *     in seq order, each held until the logger reports it durable;
 *   - a reply is sent to its client only when durable_seq >= its wait seq;
 *   - while state is BUS_RECOVERING no request reaches the resolver;
 *   - while log_fault is set (the logger said "fault": it cannot write the
 *     log) no command reaches the resolver: each gets `unavailable`. Events
 *     resolved before stay pending and their replies held; the logger keeps
 *     them and retries, so they become durable (and log_fault clears) when
 *     the disk recovers, and the resolver's state, which has applied them,
 *     never diverges from the log.
 */
#ifndef ESBANK_BUS_HUB_H
#define ESBANK_BUS_HUB_H

#include "conn.h"
#include "msg.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define BUS_CLIENTS_MAX 1024              /* connected clients */
#define BUS_CLIENT_INFLIGHT_MAX 8192      /* requests in flight per client */
#define BUS_CLIENT_OUT_BYTES_MAX (64u << 20) /* replies queued for one client */
/*
 * Reply bytes queued for all clients together (--clients-out-bytes-max may
 * lower it): without it, 1024 clients that do not read could make the bus
 * hold 64 GiB. Past it the clients with the largest backlogs are dropped.
 */
#define BUS_CLIENTS_OUT_BYTES_TOTAL_MAX ((size_t)1 << 30)
#define BUS_CLIENTS_OUT_BYTES_TOTAL_MIN (FRAME_HEADER_BYTES + FRAME_BODY_MAX) /* one reply */
#define BUS_HELD_MAX 100000               /* requests held while recovering */
#define BUS_HOLD_MS_MAX 10000             /* then they get unavailable */
#define BUS_SUBSCRIBERS_MAX 256
#define BUS_READ_EVENTS_MAX 10000         /* events per logger read */
#define BUS_READ_BYTES_MAX (FRAME_BODY_MAX - 64 * 1024)
#define BUS_TICK_MS 500
#define BUS_MAIL_PENDING_MAX 100000       /* mails held for an absent mailer (then: the log) */
/*
 * Bytes of items in one batch message to a peer: a peer's frame may not
 * exceed FRAME_BODY_MAX either, and the message's own fields take < 256
 * bytes. A batch about to grow past it is sent at once and a new one begun
 * (found by test_limits: 100,000 requests released after recovery went to
 * the resolver as one 8 MB frame, which it refused, dropping the link).
 */
#define BUS_BATCH_BYTES_MAX (FRAME_BODY_MAX - 256)
#define BUS_BATCH_ITEM_OVERHEAD 32        /* an item's map, keys and headers */

typedef enum { BUS_RECOVERING, BUS_LIVE } bus_state_t;
typedef enum { PEER_RESOLVER, PEER_LOGGER, PEER_SNAPSHOTTER, PEER_MAILER, PEER_COUNT } peer_role_t;

typedef struct hub hub_t;

typedef struct {
	link_t link;
	hub_t *hub;
	peer_role_t role;
	bool hello;        /* hello received on the current connection */
	uint64_t pid;      /* as the peer said in its hello (0: unknown) */
	uint64_t hwm;
	uint64_t snapshot_seq;
	char head[2 * 32 + 1];
} peer_t;

typedef struct client {
	conn_t conn;
	hub_t *hub;
	uint32_t slot;
	uint64_t gen;
	uint32_t inflight;
	long pid;               /* the connecting process (SO_PEERCRED), for the log */
	size_t out_counted;     /* conn.out_bytes as last added to hub.clients_out_bytes */
	bool dropped;           /* by hub.c: out_counted is 0 and stays so */
} client_t;

/* A client reference that survives the client: slot + generation. */
typedef struct {
	uint32_t slot;
	uint64_t gen;
} client_ref_t;

/* A byte string owned by a queue entry. */
typedef struct {
	char *p;
	size_t n;
} bytes_t;

/* A reply waiting for durability. */
typedef struct {
	client_ref_t to;
	uint64_t wait_seq;
	bytes_t reply;
} held_reply_t;

/* A resolved event not yet durable. */
typedef struct {
	uint64_t seq;
	bytes_t ev;
	bytes_t mail; /* p == NULL: sends no mail */
} pending_event_t;

/* A request forwarded to the resolver, by correlation id. */
typedef struct {
	uint64_t cid; /* 0: free slot */
	client_ref_t from;
	uint64_t req_id;
} outstanding_t;

/* A request held while recovering. */
typedef struct {
	client_ref_t from;
	uint64_t req_id;
	uint64_t since_ms;
	bool command;      /* refused with unavailable if released during a log fault */
	bytes_t req;
} held_request_t;

typedef enum {
	READ_EVENTS,
	READ_SUBSCRIBE,
	READ_REPLAY,
	READ_SNAPSHOTTER,
	READ_MAILER,
} read_kind_t;

/* Where recovery of the resolver stands (recovery.c). */
typedef enum { REC_IDLE, REC_RESET, REC_LOAD, REC_REPLAY } rec_phase_t;

/* A read sent to the logger; the logger answers reads in order. */
typedef struct {
	read_kind_t kind;
	client_ref_t to;
	uint64_t req_id;
	struct subscriber *sub;
} pending_read_t;

typedef struct subscriber {
	client_ref_t to;
	uint64_t req_id;
	uint64_t next_seq;
	bool reading;
	bool active;
} subscriber_t;

/* The items for one peer's next message (routes.c sends it). */
typedef struct {
	msg_buf_t items; /* encoded items, packed back to back */
	uint32_t n;
} batch_t;

/* A growable FIFO of fixed-size items (a ring). */
typedef struct {
	char *items;
	size_t item_size;
	size_t head, count, cap;
} fifo_t;

struct hub {
	uv_loop_t *loop;
	listener_t listener;
	uv_check_t batcher;     /* flushes the per-iteration batches to peers */
	uv_timer_t ticker;
	uint64_t started_ms;
	bus_state_t state;
	bool log_fault;         /* from the logger's "fault" until its next "durable" */
	peer_t peers[PEER_COUNT];

	client_t *clients[BUS_CLIENTS_MAX];
	uint64_t client_gen;
	size_t client_count;
	/* hub.c: the sum of out_counted over clients; >= what those not dropped queue */
	size_t clients_out_bytes;
	size_t clients_out_bytes_max; /* the budget, BUS_CLIENTS_OUT_BYTES_TOTAL_MAX or lower */

	uint64_t last_seq;      /* newest event resolved */
	uint64_t durable_seq;
	fifo_t pending;         /* pending_event_t, seq order */
	fifo_t held_replies;    /* held_reply_t */
	fifo_t held_requests;   /* held_request_t */
	fifo_t reads;           /* pending_read_t */

	outstanding_t *out;     /* ring indexed by cid % out_cap */
	size_t out_cap;
	uint64_t next_cid, out_base;

	subscriber_t subs[BUS_SUBSCRIBERS_MAX];

	/* batches built during one loop iteration */
	batch_t batch[PEER_COUNT]; /* one message per peer per loop iteration */
	uint64_t to_logger_first;  /* seq of the first event in batch[PEER_LOGGER] */

	rec_phase_t rec_phase;
	uint64_t replay_next;   /* next seq to read for the resolver */
	bool expect_prev;       /* check the log's hash before replay_next */
	char prev_hash[2 * 32 + 1]; /* the loaded snapshot's chain hash */
	bool no_snapshots;      /* a snapshot was tried: replay from the log */
	uint64_t snap_next;     /* next seq to read for the snapshotter, 0: none */
	bool snap_verify;       /* check the snapshotter's chain (peer head) first */
	/* mail.c: the mailer's feed, always in seq order */
	fifo_t mail_pending;    /* pending_event_t with mail, until the mailer acks */
	uint64_t boot_durable;  /* the log's end when this bus first saw the logger */
	bool boot_known;
	bool mail_streaming;    /* live mail flows; false while catching up */
	bool mail_fresh;        /* the mailer has no spool: it starts at the end */
	uint64_t mail_next;     /* next seq to read for the mailer's catch-up, 0: none */
	size_t mail_pending_max;   /* the cap on mail_pending, 0 until first asked */
	uint64_t mail_unheld_last; /* newest mail past the cap, not held (0: none) */
};

/* fifo.c */
void fifo_init(fifo_t *f, size_t item_size);
void *fifo_push(fifo_t *f); /* NULL on allocation failure */
void *fifo_peek(const fifo_t *f, size_t i);
void fifo_pop(fifo_t *f);
void bytes_copy(bytes_t *b, const char *p, size_t n);
void bytes_free(bytes_t *b);

/*
 * hub.c: clients. allow_gid: a group whose members may connect besides our
 * own user (bus.sock then 0660 in that group, the run directory 0710), or -1.
 * out_bytes_max: the budget of reply bytes queued for all clients, from
 * BUS_CLIENTS_OUT_BYTES_TOTAL_MIN to BUS_CLIENTS_OUT_BYTES_TOTAL_MAX.
 */
int hub_start(hub_t *h, uv_loop_t *loop, const char *run_dir, long allow_gid,
	      size_t out_bytes_max);
client_t *hub_client(hub_t *h, client_ref_t ref); /* NULL when gone */
client_ref_t hub_client_ref(const client_t *c);
void hub_send_raw(hub_t *h, client_ref_t to, const char *reply, size_t n);
void hub_send_error(hub_t *h, client_ref_t to, uint64_t id, int err, const char *message);
void hub_request_done(hub_t *h, client_ref_t from);
/*
 * To call after queueing a reply for c: disconnects c when its queued
 * replies exceed BUS_CLIENT_OUT_BYTES_MAX, and the clients with the largest
 * backlogs (c or others) while all clients' together exceed the budget.
 * A dropped client's queued replies are discarded (its memory is freed once
 * its socket closes, without waiting for it to read). c stays allocated.
 */
void hub_check_backlog(client_t *c);

/* routes.c: the routing table */
void route_request(hub_t *h, client_t *c, uint64_t id, int op, const char *req, size_t n);
void route_to_resolver(hub_t *h, client_ref_t from, uint64_t id, const char *req, size_t n);
void route_results(hub_t *h, const msgpack_object *items);
void route_durable(hub_t *h, uint64_t seq);
void route_flush_batches(hub_t *h);
/* Sends role's batch now if adding an item of item_bytes would overflow it. */
/*
 * Makes room for an item of item_bytes in role's batch (sending the batch
 * early when it would pass BUS_BATCH_BYTES_MAX) and returns the packer to
 * encode the item with; the caller packs exactly one item.
 */
msgpack_packer *route_batch_add(hub_t *h, peer_role_t role, size_t item_bytes);
/* Adds an event (seq, its bytes) to the logger's next "append". */
void route_append_event(hub_t *h, uint64_t seq, const char *ev, size_t n);
void route_resolver_lost(hub_t *h);
/* The logger's link is down: RECOVERING until it is back (status truthful). */
void route_logger_lost(hub_t *h);

/* events.c: events and subscribe, served from the logger */
void events_request(hub_t *h, client_t *c, uint64_t id, uint64_t from, uint64_t limit);
void events_subscribe(hub_t *h, client_t *c, uint64_t id, bool has_from, uint64_t from);
void events_read_result(hub_t *h, const msgpack_object *msg);
void events_live(hub_t *h, uint64_t seq, const bytes_t *ev);
void events_logger_lost(hub_t *h);
void events_logger_back(hub_t *h);
int events_read(hub_t *h, read_kind_t kind, uint64_t from, uint64_t limit, pending_read_t *rd);

/* peers.c */
void peers_start(hub_t *h, const char *run_dir);
bool peer_up(const hub_t *h, peer_role_t role);
const char *peer_name(peer_role_t role);

/* recovery.c */
void recovery_check(hub_t *h);
void recovery_replayed(hub_t *h, uint64_t hwm);
void recovery_loaded(hub_t *h, const msgpack_object *msg);
void recovery_read_result(hub_t *h, const msgpack_object *msg);
void recovery_snapshotter_read(hub_t *h, const msgpack_object *msg);
void recovery_peer_hello(hub_t *h, peer_t *p, const msgpack_object *msg);
void recovery_tick(hub_t *h);
void recovery_release_held(hub_t *h);

/* mail.c: the mailer's feed */
void mail_durable(hub_t *h, pending_event_t *p);
void mail_hello(hub_t *h, const msgpack_object *msg);
void mail_ack(hub_t *h, uint64_t hwm);
void mail_down(hub_t *h);
void mail_check(hub_t *h);
void mail_read_result(hub_t *h, const msgpack_object *msg);

/* status.c */
void status_reply(hub_t *h, client_t *c, uint64_t id);
uint64_t hub_now_ms(void);

#endif
