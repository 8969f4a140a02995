/*
 * repl.h - the replicator's column (repl.c; docs/replication.md,
 * docs/peers.md): the link's view of the stream, the primary's feed of
 * events to it (live, and caught up from the log after a restart), the
 * standby's "from" and "follow", and promotion.
 *
 * Used only when the bus was started with --replication primary|standby
 * (the role, recovery.h); with role single nothing here runs and the
 * replicator's link is never started.
 *
 * Invariants:
 *   - primary: replicated <= sent while the replicator is up; a catch-up
 *     read is out only from next = sent + 1 (next != 0), and no live event
 *     is batched for it meanwhile;
 *   - at most one promote is out (promoting) at a time.
 */
#ifndef ESBANK_BUS_REPL_H
#define ESBANK_BUS_REPL_H

#include "bus.h"
#include "msg.h"

#include <assert.h>

#define REPL_NAME_BYTES 128  /* a stream's or a node's name, with its NUL; longer is cut */
#define REPL_WHY_BYTES 200   /* the last fault's text, with its NUL */
#define REPL_LAG_FRESH_MS 1000 /* two of the primary's heartbeats (one every 500 ms) */

typedef struct {
	uint64_t stream_hwm;    /* the last event seq in the stream, as its hello said */
	uint64_t sent;          /* primary: the newest event sent to it this session */
	uint64_t next;          /* primary: catch-up read out from next; 0 none */
	uint64_t replicated;    /* every event up to it is held by a quorum */
	uint64_t stream_seq;    /* the stream's last sequence */
	uint64_t replicas;
	char stream[REPL_NAME_BYTES];
	char node[REPL_NAME_BYTES];    /* this group's name, as the replicator said */
	char primary[REPL_NAME_BYTES]; /* the primary's name as last heard; "" unknown */
	char head[BUS_HASH_HEX_BYTES]; /* the stream's chain hash at stream_hwm (its hello) */
	bool judged;            /* primary: the hello's hwm compared with the log's end */
	bool verify;            /* primary: check head against the log's at the first read */
	bool fault;             /* a "fault" (or the stream ahead of this log) not yet cleared */
	char why[REPL_WHY_BYTES];
	uint64_t from;          /* standby: the seq last asked for with "from"; 0: none yet */
	bool promoting;         /* a "promote" is out, or its record not yet applied */
	bool promote_client;    /* a client waits for the answer (promote_to, promote_id) */
	client_ref_t promote_to;
	uint64_t promote_id;
	uint64_t promote_cid;
	uint64_t takeover_seq;  /* the takeover record's seq once "promoted" said it; 0 */
	uint64_t heard_seq;     /* standby: the primary's replicated seq, as its last heartbeat said */
	uint64_t heard_ms;      /* standby: when that heartbeat came (bus_now_ms); 0: none yet */
	uint64_t held_ms;       /* standby: when it last was known to hold every event the
	                         * primary had replicated (a heartbeat's time) */
} repl_t;

static inline void repl_assert(const repl_t *r)
{
	assert(r->next == 0 || r->next == r->sent + 1);
	assert(!r->promote_client || r->promoting);
}

/* The replicator's hello (msg): where the stream stands. */
void repl_up(hub_t *h, const msgpack_object *msg);
/* Primary: the hello's stream hwm against the log's end (a fault if the
 * stream is ahead, else replicated from it), once both the replicator and the
 * logger have said hello (either may come first: repl_up and the logger's
 * hello call it, the latter before the durable bound is computed). */
void repl_judge(hub_t *h);
/* Its link is down: a catch-up stops; a waiting promote gets unavailable. */
void repl_down(hub_t *h);
/* Primary: catches the replicator up from the log; standby: sends "from" once live. */
void repl_check(hub_t *h);
/* A live event (primary): into the replicator's next "append" when it streams. */
void repl_live(hub_t *h, uint64_t seq, const char *ev, size_t n);
/* "replicated" (msg): every event up to its seq is held by a quorum. */
void repl_replicated(hub_t *h, const msgpack_object *msg);
/* "fault" (msg): nothing more is replicated until the next "replicated". */
void repl_fault(hub_t *h, const msgpack_object *msg);
/* "fenced" (msg): another primary wrote. The caller makes the role fenced. */
void repl_fenced(hub_t *h, const msgpack_object *msg);
/* "primary" (msg): the primary's name; with "hwm", one of its heartbeats
 * (its replicated seq), which a standby's lag is measured against. */
void repl_primary(hub_t *h, const msgpack_object *msg);
/*
 * Standby: how far behind the primary it is: *events, the primary's
 * replicated seq at its last heartbeat minus applied (0 if not above);
 * *ms, 0 while heartbeats come (within REPL_LAG_FRESH_MS) and applied holds
 * what the last one said, else the ms since the last heartbeat it was known
 * to hold everything at. False when no heartbeat was heard yet.
 */
bool repl_standby_lag(const hub_t *h, uint64_t applied, uint64_t *events, uint64_t *ms);
/*
 * "follow" (msg, standby): 0 with *evs (an array of bin) whose events from
 * index *skip on are last + 1, last + 2, ... (the ones at or below last are
 * skipped), or -EAGAIN when there are none to take (a gap asks "from" again).
 */
int repl_follow(hub_t *h, const msgpack_object *msg, uint64_t last, uint32_t *skip,
                const msgpack_object **evs);
/* The op "promote" from client to (id). */
void repl_promote(hub_t *h, client_ref_t to, uint64_t id);
/* "promoted" (msg): the takeover record's seq, or why not (answered here). */
void repl_promoted(hub_t *h, const msgpack_object *msg);
/*
 * The resolver holds every event up to hwm: true when that includes the
 * takeover record of a promotion, which is then answered; the caller makes
 * the bus primary (repl_now_primary).
 */
bool repl_promotion_applied(hub_t *h, uint64_t hwm);
/* The bus became primary after the takeover record seq: the replicator holds it. */
void repl_now_primary(hub_t *h, uint64_t seq);
/*
 * The durable bound for a log durable up to logger_seq: the smaller of it
 * and replicated when the role is primary or fenced, else logger_seq.
 */
uint64_t repl_bound(const hub_t *h, uint64_t logger_seq);
/* Primary: true while the replicator says it cannot publish (a fault): a
 * reply that waits for replication would wait until NATS is back. */
bool repl_stalled(const hub_t *h);
/* Primary: true when the replicator is up and the stream holds every event of
 * the log (even while it faults: then commands get unavailable, reads work). */
bool repl_caught_up(const hub_t *h);
/*
 * A command from to (id): true when it was answered here (not_primary on a
 * standby or fenced group, unavailable on a primary whose replicator is away
 * or faulted), false when it may go on.
 */
bool repl_refuse(hub_t *h, client_ref_t to, uint64_t id);
/* Answers to (id) not_primary, naming the primary when known. */
void repl_send_not_primary(hub_t *h, client_ref_t to, uint64_t id);

#endif
