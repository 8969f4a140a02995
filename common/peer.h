/*
 * peer.h - the peer side of the peer protocol (docs/peers.md), written once
 * for the resolver, the logger, the snapshotter and the mailer: a listening
 * socket that serves exactly one bus session at a time, checks the bus
 * hello, and hands each later message to the handler registered for its
 * type ("t").
 *
 * A connection becomes the bus session only by sending, as its first frame
 * and within PEER_HELLO_MS_MAX, the bus hello
 *     {"t":"hello","role":"bus","pid":P,"session":N}
 * where P is the connecting process's pid (SO_PEERCRED) and N the bus's
 * session number (logged). Anything else - silence, garbage, another message,
 * a hello while a bus session is open, more than PEER_CANDIDATES_MAX
 * connections waiting for their hello - is refused: the peer logs the
 * reason, sends {"t":"refused","message":text} (best effort) and closes. A
 * refused connection changes no state of the peer and sees none of its
 * messages: the peer's callbacks only ever see the bound session.
 *
 * Dispatch: each frame of the bound session is decoded as one msgpack map
 * and handed to the handler whose name equals its "t". A frame that is not
 * one map, or whose type no handler names, is logged and ignored (docs/
 * peers.md: "a peer that receives a message it does not understand logs it
 * and ignores it").
 *
 * Invariants: at most one bound session (bus); it is never on the candidate
 * list; every candidate closes within PEER_HELLO_MS_MAX plus one sweep.
 *
 * Ownership: the server allocates and frees every connection; a conn_t
 * handed to a callback is valid until on_close has returned. c->data is the
 * server's data for every connection, so a handler finds its peer's state
 * there. The handler table and role are the caller's and must outlive it.
 */
#ifndef ESBANK_PEER_H
#define ESBANK_PEER_H

#include "conn.h"

#include <stdbool.h>
#include <stdint.h>

#define PEER_HELLO_MS_MAX 2000    /* a new connection's bus hello must come by then */
#define PEER_CANDIDATES_MAX 16    /* connections waiting for their hello */
#define PEER_SWEEP_MS 250         /* how often late candidates are looked for */
#define PEER_ZONE_CHUNK_BYTES 4096 /* first msgpack zone chunk for one message */

typedef struct peer_server peer_server_t;
typedef struct peer_conn peer_conn_t;
typedef void (*peer_session_cb)(peer_server_t *p, conn_t *bus);
/* A message of the bound session; msg (a map) lives until the handler returns. */
typedef void (*peer_msg_cb)(conn_t *bus, const msgpack_object *msg);

/* One entry of a peer's dispatch table; the table ends with { NULL, NULL }. */
typedef struct {
	const char *type; /* the message's "t" */
	peer_msg_cb on_msg;
} peer_handler_t;

struct peer_server {
	listener_t listener;
	uv_loop_t *loop;
	uv_timer_t sweep;          /* closes candidates past their deadline */
	const char *role;          /* the peer's role: its hello and its log lines */
	peer_conn_t *bus;          /* the bound session, NULL when none */
	peer_conn_t *candidates;
	size_t candidates_n;
	bool stopping;
	const peer_handler_t *handlers; /* the bound session's messages, by type */
	peer_session_cb on_open;   /* a bus hello was accepted: send the peer's hello */
	peer_session_cb on_close;  /* the bound session's connection is gone; may be NULL */
	void *data;
};

/*
 * Listens on path (see listener_open) for role's bus. handlers, the
 * callbacks and data are set by the caller before. Returns 0 or a negative
 * error.
 */
int peer_listen(peer_server_t *p, uv_loop_t *loop, const char *role, const char *path);

/* The bound session's connection, or NULL (none, or it is closing). */
conn_t *peer_bus(const peer_server_t *p);

/*
 * Ends the bound session (a broken stream: a sequence gap), logging why;
 * the bus reconnects and the normal hello + replay path runs.
 */
void peer_drop(peer_server_t *p, const char *why);

/*
 * Stops taking connections and removes the socket file; the bound session
 * stays open (a logger finishing its last write still acknowledges it).
 */
void peer_stop_listening(peer_server_t *p);

/* Stops listening (the socket file is removed) and closes every connection. */
void peer_stop(peer_server_t *p);

/*
 * Opens the peer's hello to bus: a map of 4 + extra entries, of which
 * "t":"hello", "role", "hwm":hwm and "pid" (ours) are packed. The caller
 * packs its extra key/value pairs into the returned packer, then calls
 * conn_pack_end(bus).
 */
msgpack_packer *peer_hello_begin(const peer_server_t *p, conn_t *bus, uint64_t hwm,
                                 uint32_t extra);

/* Tells the bus, on its session bus, that this peer cannot do its job now:
 * {"t":"fault","message":message} (docs/peers.md). */
void peer_send_fault(conn_t *bus, const char *message);

/* The bus's side: sends the bus hello on a new link to a peer. */
void peer_send_bus_hello(conn_t *c);

#endif
