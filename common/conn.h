/*
 * conn.h - framed connections on libuv Unix-domain sockets, used for every
 * socket in esbank: clients on bus.sock, and the bus's links to its peers.
 *
 * Reading: bytes are collected into a frame_reader_t and on_frame is called
 * once per whole frame. A framing error (length 0 or above FRAME_BODY_MAX)
 * calls on_bad_frame (which may queue a last reply) and closes.
 *
 * Writing is batched: conn_send()/conn_pack_begin() append to an output
 * buffer and the buffer is handed to the kernel once per loop iteration (a
 * uv_prepare handle flushes every connection that has output), so many
 * frames cost one system call. out_bytes tells how much is queued, for
 * back-pressure.
 *
 * Ownership: a conn_t is allocated by the caller (embed it or malloc it);
 * after conn_close() the caller must not free it until on_close has run.
 */
#ifndef ESBANK_CONN_H
#define ESBANK_CONN_H

#include "frame.h"
#include "msg.h"

#include <stdbool.h>
#include <uv.h>

#define CONN_BACKOFF_MIN_MS 50
#define CONN_BACKOFF_MAX_MS 2000
/* While nobody listens on a link's path yet (ENOENT, ECONNREFUSED: a peer
 * still starting, say a logger checking a long log), it is tried again at
 * least this often: such a connect costs microseconds, and a long back-off
 * there only delays start-up (it cost 1.6 s of a 6 s replay). */
#define CONN_LISTEN_WAIT_MAX_MS 100
#define CONN_LISTEN_BACKLOG 512
#define CONN_PATH_BYTES_MAX 108 /* sun_path */

typedef struct conn conn_t;
typedef void (*conn_frame_cb)(conn_t *c, const char *body, size_t len);
typedef void (*conn_event_cb)(conn_t *c);

struct conn {
	uv_pipe_t pipe;
	uv_loop_t *loop;
	frame_reader_t rd;
	msg_buf_t out;      /* queued, not yet handed to uv_write */
	msg_buf_t busy;     /* bytes owned by the write in flight */
	uv_write_t wreq;
	bool writing;
	bool dirty;         /* on the flush list */
	bool closing;
	bool paused;        /* reading stopped by conn_pause() */
	size_t frame_off;   /* open frame from conn_pack_begin() */
	conn_t *next_dirty; /* flush list links, while dirty */
	conn_t *prev_dirty;
	size_t out_bytes;   /* queued + in flight */
	conn_frame_cb on_frame;
	conn_event_cb on_bad_frame; /* may be NULL */
	conn_event_cb on_close;     /* after the handle is closed; may free c */
	void *data;
};

/* Initialises c on loop with its callbacks; no socket yet. */
void conn_init(conn_t *c, uv_loop_t *loop, conn_frame_cb on_frame, conn_event_cb on_close);

/* Starts reading (after accept or connect). Returns 0 or a libuv error. */
int conn_start(conn_t *c);

/* Stops / resumes reading (back-pressure). */
void conn_pause(conn_t *c);
void conn_resume(conn_t *c);

/* Queues one frame whose body is the n bytes at body. */
void conn_send(conn_t *c, const void *body, size_t n);

/*
 * Opens a frame in the output buffer and returns the packer to encode its
 * single map into; conn_pack_end() closes the frame. No other send may come
 * between the two.
 */
msgpack_packer *conn_pack_begin(conn_t *c);
void conn_pack_end(conn_t *c);

/* Writes whatever is queued now (otherwise done once per loop iteration). */
void conn_flush(conn_t *c);

/*
 * Closes the socket after queued output is written (best effort). Frames
 * sent after this are dropped. on_close runs once the handle is closed;
 * the reader and output buffers are freed by then, so c may be reused with
 * conn_init() or freed.
 */
void conn_close(conn_t *c);

/* The peer's user id check (SO_PEERCRED): 0 when admitted, -EPERM otherwise. */
int conn_check_peer(conn_t *c, long allow_gid);

/* The connected process's pid (SO_PEERCRED), or 0 when it cannot be read. */
long conn_peer_pid(conn_t *c);

/*
 * Listening socket. Creates path with mode 0600, replacing a socket file left
 * behind by a process that was killed (when nothing answers on it), refusing
 * when another process listens there (-EADDRINUSE). Each accepted
 * connection's peer uid is checked with SO_PEERCRED: only our own uid (and
 * allow_gid, when not -1) is admitted; others are closed at once.
 * on_accept receives the accepted pipe's file descriptor through a fresh
 * uv_pipe_t the callback must init: see conn_accept().
 */
typedef struct listener listener_t;
typedef void (*listener_cb)(listener_t *l);
struct listener {
	uv_pipe_t pipe;
	uv_loop_t *loop;
	listener_cb on_accept;
	long allow_gid;
	char path[CONN_PATH_BYTES_MAX];
	unsigned long long ino; /* of the socket file we bound, to remove only ours */
	void *data;
};

int listener_open(listener_t *l, uv_loop_t *loop, const char *path, listener_cb on_accept);
/*
 * Stops listening and removes the socket file, if it is still the one this
 * listener bound (not one a successor has bound since). Safe to call twice.
 */
void listener_close(listener_t *l);

/*
 * Accepts one pending connection into c (already conn_init'ed) and starts
 * reading. Returns 0, or a negative error (c is then closed and on_close
 * will run) when accept fails or the peer's user is not admitted.
 */
int conn_accept(listener_t *l, conn_t *c);

/*
 * An outgoing link that keeps itself connected: connects to path, and after
 * a failure or a close retries with back-off (CONN_BACKOFF_MIN_MS doubling to
 * CONN_BACKOFF_MAX_MS; back to the minimum only after a connection that
 * lasted CONN_BACKOFF_MAX_MS, so a peer that refuses at once is not
 * hammered; while nobody listens at path, at most CONN_LISTEN_WAIT_MAX_MS).
 * on_up runs after each successful connect; on_down after each loss. Frames go to on_frame as for any conn_t (link->conn).
 */
typedef struct link link_t;
typedef void (*link_cb)(link_t *k);
struct link {
	conn_t conn;
	uv_loop_t *loop;
	uv_timer_t timer;
	uv_connect_t creq;
	char path[CONN_PATH_BYTES_MAX];
	bool up;
	bool stopping;
	bool nobody_listens; /* the last connect found no listener at path */
	uint64_t backoff_ms;
	uint64_t up_since_ms; /* loop time of the last successful connect */
	link_cb on_up;
	link_cb on_down;
	conn_frame_cb on_frame;
	void *data;
};

/* Returns 0, or -ENAMETOOLONG when path does not fit a socket address. */
int link_start(link_t *k, uv_loop_t *loop, const char *path, conn_frame_cb on_frame,
               link_cb on_up, link_cb on_down);
void link_stop(link_t *k);

/*
 * Drops the current connection (the peer broke the protocol, e.g. a sequence
 * gap): on_down runs once it is closed, and the link reconnects as after any
 * loss. Does nothing when the link is not up.
 */
void link_reset(link_t *k);

/* Flushes every connection with queued output; called by the prepare handle. */
void conn_flush_all(uv_loop_t *loop);

#endif
