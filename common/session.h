/*
 * session.h - a peer's listening socket that serves exactly one bus session
 * at a time (docs/peers.md, "Sessions").
 *
 * A connection becomes the bus session only by sending, as its first frame
 * and within SESSION_HELLO_MS_MAX, the bus hello
 *     {"t":"hello","role":"bus","pid":P,"session":N}
 * where P is the connecting process's pid (SO_PEERCRED) and N the bus's
 * session number (logged). Anything else - silence, garbage, another message,
 * a hello while a bus session is open, more than SESSION_CANDIDATES_MAX
 * connections waiting for their hello - is refused: the peer logs the
 * reason, sends {"t":"refused","message":text} (best effort) and closes. A
 * refused connection changes no state of the peer and sees none of its
 * messages: the peer's callbacks only ever see the bound session.
 *
 * Invariants: at most one bound session (bus); it is never on the candidate
 * list; every candidate closes within SESSION_HELLO_MS_MAX plus one sweep.
 *
 * Ownership: the session allocates and frees every connection; a conn_t
 * handed to a callback is valid until on_close has returned. c->data is the
 * session's data for every connection, so a peer's frame callback finds its
 * state as before.
 */
#ifndef ESBANK_SESSION_H
#define ESBANK_SESSION_H

#include "conn.h"

#include <stdbool.h>
#include <stdint.h>

#define SESSION_HELLO_MS_MAX 2000   /* a new connection's bus hello must come by then */
#define SESSION_CANDIDATES_MAX 16   /* connections waiting for their hello */
#define SESSION_SWEEP_MS 250        /* how often late candidates are looked for */

typedef struct session session_t;
typedef struct session_conn session_conn_t;
typedef void (*session_cb)(session_t *s, conn_t *bus);

struct session {
	listener_t listener;
	uv_loop_t *loop;
	uv_timer_t sweep;          /* closes candidates past their deadline */
	const char *role;          /* the peer's role, for the log */
	session_conn_t *bus;       /* the bound session, NULL when none */
	session_conn_t *candidates;
	size_t candidates_n;
	bool stopping;
	conn_frame_cb on_frame;    /* the bound session's frames */
	session_cb on_open;        /* a bus hello was accepted: send the peer's hello */
	session_cb on_close;       /* the bound session's connection is gone */
	void *data;
};

/*
 * Listens on path (see listener_open) for role's bus. The callbacks and
 * data are set by the caller before. Returns 0 or a negative error.
 */
int session_listen(session_t *s, uv_loop_t *loop, const char *role, const char *path);

/* The bound session's connection, or NULL (none, or it is closing). */
conn_t *session_bus(const session_t *s);

/*
 * Ends the bound session (a broken stream: a sequence gap), logging why;
 * the bus reconnects and the normal hello + replay path runs.
 */
void session_drop(session_t *s, const char *why);

/*
 * Stops taking connections and removes the socket file; the bound session
 * stays open (a logger finishing its last write still acknowledges it).
 */
void session_stop_listening(session_t *s);

/* Stops listening (the socket file is removed) and closes every connection. */
void session_stop(session_t *s);

/* The bus's side: sends the bus hello on a new link to a peer. */
void session_send_bus_hello(conn_t *c);

#endif
