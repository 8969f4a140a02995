/*
 * peer.c - the peer side of the peer protocol (see peer.h): one bus session
 * at a time on a peer's socket, the bus hello checked, then every message of
 * the session dispatched by its type to the peer's handler table.
 *
 * The wire of the session, both ways, one frame each (docs/peers.md,
 * "Sessions"):
 *   bus -> peer  {"t":"hello","role":"bus","pid":P,"session":N}
 *                first frame of every link; "pid" a positive integer that
 *                must equal the sender's pid as the kernel reports it
 *                (SO_PEERCRED), "session" a positive integer.
 *   peer -> any  {"t":"refused","message":text}
 *                the connection is refused and closed right after.
 * The peer's own hello (docs/peers.md, "Every peer") follows an accepted bus
 * hello; a refused connection gets nothing else:
 *   peer -> bus  {"t":"hello","role":R,"hwm":N,"pid":P, ...the role's fields}
 *                (peer_hello_begin packs the first four).
 * After that every frame of the bound session is one msgpack map with a
 * string "t"; a frame that is not one map, or whose "t" names no handler, is
 * logged and ignored.
 *
 * Why this and no secret token: the sockets admit only our own user
 * (SO_PEERCRED, mode 0600 in a 0700 directory), and a process of our user can
 * ptrace any peer anyway, so a token would add no protection against it.
 * What the binding prevents is an accident: a client pointed at the wrong
 * socket, a stale second bus, a probe. Those must never be taken for the bus.
 *
 * A bus that died leaves its session open only until the peer reads the EOF
 * the kernel delivers at once; a new bus that connects before that is
 * refused and retries within CONN_BACKOFF_MIN_MS.
 */
#include "peer.h"

#include "diag.h"
#include "protocol.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define PEER_REASON_BYTES_MAX 160 /* a refusal's text */

struct peer_conn {
	conn_t conn;          /* first: a conn_t * is a peer_conn_t * */
	peer_server_t *s;
	uint64_t deadline_ms; /* loop time by which the bus hello must come */
	long pid;             /* of the connecting process (SO_PEERCRED) */
	peer_conn_t *next;    /* candidate list, while a candidate */
	peer_conn_t *prev;
};

static void peer_unlink(peer_server_t *s, peer_conn_t *sc)
{
	if (sc->prev)
		sc->prev->next = sc->next;
	else if (s->candidates == sc)
		s->candidates = sc->next;
	else
		return; /* not on the list */
	if (sc->next)
		sc->next->prev = sc->prev;
	sc->next = sc->prev = NULL;
	s->candidates_n--;
}

static void peer_refuse(peer_conn_t *sc, const char *why)
{
	if (sc->conn.closing)
		return;
	diag_warn("%s: refused a connection (pid %ld): %s", sc->s->role, sc->pid, why);
	msgpack_packer *pk = conn_pack_begin(&sc->conn);
	msgpack_pack_map(pk, 2);
	msg_pack_kv_str(pk, PEER_T, PEER_MSG_REFUSED);
	msg_pack_kv_str(pk, PEER_F_MESSAGE, why);
	conn_pack_end(&sc->conn);
	conn_close(&sc->conn);
}

/* The hello's "pid" and "session"; NULL when it is a valid bus hello. */
static const char *peer_check_hello(const peer_conn_t *sc, const msgpack_object *m,
                                       uint64_t *pid, uint64_t *id)
{
	const msgpack_object *t = msg_get(m, PEER_T), *role = msg_get(m, PEER_F_ROLE);
	if (!t || !msg_str_eq(t, PEER_MSG_HELLO) || !role || !msg_str_eq(role, PEER_ROLE_BUS))
		return "the first message is not the bus hello";
	if (msg_get_u64(m, PEER_F_PID, pid) < 0 || msg_get_u64(m, PEER_F_SESSION, id) < 0 || *pid == 0 ||
	    *id == 0)
		return "the bus hello lacks a pid or a session";
	if ((long)*pid != sc->pid)
		return "the bus hello names another process";
	return NULL;
}

/* The handler of type t in the table; NULL when none. */
static peer_msg_cb peer_handler(const peer_handler_t *h, const msgpack_object *t)
{
	for (; t && h->type; h++)
		if (msg_str_eq(t, h->type))
			return h->on_msg;
	return NULL;
}

/* A frame of the bound session: to the handler its "t" names. */
static void peer_dispatch(conn_t *c, const char *body, size_t len)
{
	peer_server_t *s = ((peer_conn_t *)c)->s;
	msgpack_zone zone;
	msgpack_object m;
	if (!msgpack_zone_init(&zone, PEER_ZONE_CHUNK_BYTES)) {
		diag_error("%s: out of memory decoding a message", s->role);
		return;
	}
	if (msg_decode_map(body, len, &zone, &m) < 0) {
		diag_warn("%s: a frame from the bus that is not one msgpack map (%zu bytes): ignored",
		         s->role, len);
	} else {
		peer_msg_cb on_msg = peer_handler(s->handlers, msg_get(&m, PEER_T));
		if (on_msg)
			on_msg(c, &m);
		else
			diag_warn("%s: a message from the bus of a type it does not know: ignored",
			         s->role);
	}
	msgpack_zone_destroy(&zone);
}

static void peer_bind(peer_server_t *s, peer_conn_t *sc, uint64_t pid, uint64_t id)
{
	peer_unlink(s, sc);
	s->bus = sc;
	sc->conn.on_frame = peer_dispatch;
	diag_info("%s: bus session %" PRIu64 " of pid %" PRIu64 " opened", s->role, id, pid);
	if (s->on_open)
		s->on_open(s, &sc->conn);
}

/* A candidate's frame: must be the bus hello. */
static void peer_on_hello(conn_t *c, const char *body, size_t len)
{
	peer_conn_t *sc = (peer_conn_t *)c;
	peer_server_t *s = sc->s;
	msgpack_zone zone;
	msgpack_object m;
	uint64_t pid = 0, id = 0;
	char why[PEER_REASON_BYTES_MAX];
	const char *bad = NULL;
	msgpack_zone_init(&zone, 1024);
	if (msg_decode_map(body, len, &zone, &m) < 0)
		bad = "the first frame is not one msgpack map";
	else
		bad = peer_check_hello(sc, &m, &pid, &id);
	msgpack_zone_destroy(&zone);
	if (!bad && s->stopping)
		bad = "stopping";
	if (!bad && s->bus) {
		snprintf(why, sizeof(why), "a bus session is open (pid %ld)", s->bus->pid);
		bad = why;
	}
	if (bad)
		peer_refuse(sc, bad);
	else
		peer_bind(s, sc, pid, id);
}

static void peer_conn_closed(conn_t *c)
{
	peer_conn_t *sc = (peer_conn_t *)c;
	peer_server_t *s = sc->s;
	peer_unlink(s, sc);
	if (s->bus == sc) {
		s->bus = NULL;
		diag_info("%s: bus session closed", s->role);
		if (s->on_close)
			s->on_close(s, c);
	}
	free(sc);
}

static void peer_sweep_cb(uv_timer_t *t)
{
	peer_server_t *s = t->data;
	uint64_t now = uv_now(s->loop);
	for (peer_conn_t *sc = s->candidates, *next; sc; sc = next) {
		next = sc->next;
		if (now >= sc->deadline_ms)
			peer_refuse(sc, "no bus hello in time");
	}
	if (!s->candidates)
		uv_timer_stop(&s->sweep);
}

/* A new connection: a candidate until its first frame. */
static void peer_on_accept(listener_t *l)
{
	peer_server_t *s = l->data;
	peer_conn_t *sc = calloc(1, sizeof(*sc));
	if (!sc) {
		diag_error("%s: out of memory accepting a connection", s->role);
		return;
	}
	sc->s = s;
	sc->conn.data = s->data;
	conn_init(&sc->conn, s->loop, peer_on_hello, peer_conn_closed);
	sc->next = s->candidates;
	if (s->candidates)
		s->candidates->prev = sc;
	s->candidates = sc;
	s->candidates_n++;
	if (conn_accept(l, &sc->conn) < 0)
		return; /* closed; peer_conn_closed frees it */
	sc->pid = conn_peer_pid(&sc->conn);
	sc->deadline_ms = uv_now(s->loop) + PEER_HELLO_MS_MAX;
	if (s->stopping || s->candidates_n > PEER_CANDIDATES_MAX) {
		peer_refuse(sc, s->stopping ? "stopping" : "too many connections waiting");
		return;
	}
	if (!uv_is_active((uv_handle_t *)&s->sweep))
		uv_timer_start(&s->sweep, peer_sweep_cb, PEER_SWEEP_MS, PEER_SWEEP_MS);
}

int peer_listen(peer_server_t *s, uv_loop_t *loop, const char *role, const char *path)
{
	s->loop = loop;
	s->role = role;
	s->bus = NULL;
	s->candidates = NULL;
	s->candidates_n = 0;
	s->stopping = false;
	s->listener.data = s;
	int rc = listener_open(&s->listener, loop, path, peer_on_accept);
	if (rc < 0)
		return rc;
	uv_timer_init(loop, &s->sweep);
	s->sweep.data = s;
	return 0;
}

conn_t *peer_bus(const peer_server_t *s)
{
	if (!s->bus || s->bus->conn.closing)
		return NULL;
	return &s->bus->conn;
}

void peer_drop(peer_server_t *s, const char *why)
{
	conn_t *c = peer_bus(s);
	if (!c)
		return;
	diag_warn("%s: ending the bus session: %s", s->role, why);
	conn_close(c);
}

void peer_stop_listening(peer_server_t *s)
{
	s->stopping = true;
	listener_close(&s->listener);
}

void peer_stop(peer_server_t *s)
{
	if (uv_is_closing((uv_handle_t *)&s->sweep))
		return;
	peer_stop_listening(s);
	uv_close((uv_handle_t *)&s->sweep, NULL);
	for (peer_conn_t *sc = s->candidates; sc; sc = sc->next)
		conn_close(&sc->conn);
	if (s->bus)
		conn_close(&s->bus->conn);
}

msgpack_packer *peer_hello_begin(const peer_server_t *s, conn_t *bus, uint64_t hwm,
                                 uint32_t extra)
{
	msgpack_packer *pk = conn_pack_begin(bus);
	msgpack_pack_map(pk, 4 + extra);
	msg_pack_kv_str(pk, PEER_T, PEER_MSG_HELLO);
	msg_pack_kv_str(pk, PEER_F_ROLE, s->role);
	msg_pack_kv_u64(pk, PEER_F_HWM, hwm);
	msg_pack_kv_u64(pk, PEER_F_PID, (uint64_t)getpid());
	return pk;
}

void peer_send_fault(conn_t *bus, const char *message)
{
	msgpack_packer *pk = conn_pack_begin(bus);
	msgpack_pack_map(pk, 2);
	msg_pack_kv_str(pk, PEER_T, PEER_MSG_FAULT);
	msg_pack_kv_str(pk, PEER_F_MESSAGE, message);
	conn_pack_end(bus);
}

void peer_send_bus_hello(conn_t *c)
{
	static uint64_t session_id; /* the bus's links, numbered from 1 */
	msgpack_packer *pk = conn_pack_begin(c);
	msgpack_pack_map(pk, 4);
	msg_pack_kv_str(pk, PEER_T, PEER_MSG_HELLO);
	msg_pack_kv_str(pk, PEER_F_ROLE, PEER_ROLE_BUS);
	msg_pack_kv_u64(pk, PEER_F_PID, (uint64_t)getpid());
	msg_pack_kv_u64(pk, PEER_F_SESSION, ++session_id);
	conn_pack_end(c);
}
