/*
 * conn.c - framed connections on libuv pipes (see conn.h).
 *
 * Output batching: every conn with queued output sits on one flush list per
 * process; a uv_prepare handle, which runs once per loop iteration just
 * before the loop polls for I/O, hands each queued buffer to uv_write. While
 * a write is in flight new frames keep collecting in `out`, so under load
 * each system call carries many frames (the same idea as group commit).
 */
#include "conn.h"
#include "diag.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define CONN_READ_CHUNK_BYTES (64 * 1024)

static struct {
	uv_prepare_t prepare;
	uv_loop_t *loop;
	conn_t *dirty;
} conn_flusher;

static void conn_flusher_cb(uv_prepare_t *h)
{
	conn_flush_all(h->loop);
}

static void conn_flusher_ensure(uv_loop_t *loop)
{
	if (conn_flusher.loop == loop)
		return;
	if (conn_flusher.loop != NULL) {
		diag_error("conn: one event loop per process is supported");
		abort();
	}
	conn_flusher.loop = loop;
	/* a peer that vanished must give EPIPE on write, not kill the process */
	signal(SIGPIPE, SIG_IGN);
	uv_prepare_init(loop, &conn_flusher.prepare);
	uv_prepare_start(&conn_flusher.prepare, conn_flusher_cb);
	uv_unref((uv_handle_t *)&conn_flusher.prepare);
}

static void conn_unlink_dirty(conn_t *c)
{
	if (!c->dirty)
		return;
	if (c->prev_dirty)
		c->prev_dirty->next_dirty = c->next_dirty;
	else
		conn_flusher.dirty = c->next_dirty;
	if (c->next_dirty)
		c->next_dirty->prev_dirty = c->prev_dirty;
	c->next_dirty = c->prev_dirty = NULL;
	c->dirty = false;
}

static void conn_mark_dirty(conn_t *c)
{
	if (c->dirty)
		return;
	c->dirty = true;
	c->prev_dirty = NULL;
	c->next_dirty = conn_flusher.dirty;
	if (conn_flusher.dirty)
		conn_flusher.dirty->prev_dirty = c;
	conn_flusher.dirty = c;
}

void conn_init(conn_t *c, uv_loop_t *loop, conn_frame_cb on_frame, conn_event_cb on_close)
{
	void *data = c->data;
	memset(c, 0, sizeof(*c));
	c->data = data;
	c->loop = loop;
	c->on_frame = on_frame;
	c->on_close = on_close;
	frame_reader_init(&c->rd);
	msg_buf_init(&c->out);
	msg_buf_init(&c->busy);
	conn_flusher_ensure(loop);
}

static void conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	conn_t *c = h->data;
	size_t got = 0;
	char *p = frame_reader_space(&c->rd, CONN_READ_CHUNK_BYTES, &got);
	*buf = uv_buf_init(p, p ? (unsigned)got : 0);
}

/* Hands every whole frame held to on_frame; stops when c starts closing. */
static void conn_dispatch(conn_t *c)
{
	const char *body;
	size_t len;
	int rc;
	while (!c->closing && (rc = frame_reader_next(&c->rd, &body, &len)) != 0) {
		if (rc < 0) {
			if (c->on_bad_frame)
				c->on_bad_frame(c);
			conn_close(c);
			return;
		}
		c->on_frame(c, body, len);
	}
}

static void conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	conn_t *c = s->data;
	if (nread < 0) {
		if (nread != UV_EOF)
			diag_debug("conn: read: %s", uv_strerror((int)nread));
		conn_close(c);
		return;
	}
	frame_reader_commit(&c->rd, (size_t)nread);
	conn_dispatch(c);
}

int conn_start(conn_t *c)
{
	c->pipe.data = c;
	return uv_read_start((uv_stream_t *)&c->pipe, conn_alloc_cb, conn_read_cb);
}

void conn_pause(conn_t *c)
{
	if (c->paused || c->closing)
		return;
	c->paused = true;
	uv_read_stop((uv_stream_t *)&c->pipe);
}

void conn_resume(conn_t *c)
{
	if (!c->paused || c->closing)
		return;
	c->paused = false;
	conn_start(c);
}

void conn_send(conn_t *c, const void *body, size_t n)
{
	if (c->closing)
		return;
	char hdr[FRAME_HEADER_BYTES];
	frame_put_header(hdr, (uint32_t)n);
	msg_buf_append(&c->out, hdr, sizeof(hdr));
	msg_buf_append(&c->out, body, n);
	c->out_bytes += sizeof(hdr) + n;
	conn_mark_dirty(c);
}

msgpack_packer *conn_pack_begin(conn_t *c)
{
	c->frame_off = msg_frame_begin(&c->out);
	return &c->out.pk;
}

void conn_pack_end(conn_t *c)
{
	msg_frame_end(&c->out, c->frame_off);
	if (c->closing) {
		c->out.sb.size = c->frame_off;
		return;
	}
	c->out_bytes += c->out.sb.size - c->frame_off;
	conn_mark_dirty(c);
}

static void conn_finish_close(conn_t *c);

static void conn_write_cb(uv_write_t *req, int status)
{
	conn_t *c = req->data;
	c->writing = false;
	c->out_bytes -= c->busy.sb.size;
	msg_buf_reset(&c->busy);
	if (status < 0) {
		diag_debug("conn: write: %s", uv_strerror(status));
		c->out_bytes -= c->out.sb.size;
		msg_buf_reset(&c->out);
		if (!c->closing)
			conn_close(c);
		else
			conn_finish_close(c);
		return;
	}
	if (c->closing)
		conn_finish_close(c);
	else if (c->out.sb.size)
		conn_mark_dirty(c);
}

/* Swaps the queued bytes into `busy` and starts one write of all of them. */
static void conn_write_now(conn_t *c)
{
	msgpack_sbuffer tmp = c->busy.sb;
	c->busy.sb = c->out.sb;
	c->out.sb = tmp;
	c->wreq.data = c;
	uv_buf_t buf = uv_buf_init(c->busy.sb.data, (unsigned)c->busy.sb.size);
	int rc = uv_write(&c->wreq, (uv_stream_t *)&c->pipe, &buf, 1, conn_write_cb);
	if (rc < 0) {
		diag_debug("conn: write: %s", uv_strerror(rc));
		c->out_bytes -= c->busy.sb.size;
		msg_buf_reset(&c->busy);
		if (!c->closing)
			conn_close(c);
		return;
	}
	c->writing = true;
}

void conn_flush(conn_t *c)
{
	conn_unlink_dirty(c);
	if (c->writing || c->out.sb.size == 0)
		return;
	conn_write_now(c);
}

void conn_flush_all(uv_loop_t *loop)
{
	while (conn_flusher.dirty)
		conn_flush(conn_flusher.dirty);
}

static void conn_close_cb(uv_handle_t *h)
{
	conn_t *c = h->data;
	frame_reader_free(&c->rd);
	msg_buf_free(&c->out);
	msg_buf_free(&c->busy);
	c->out_bytes = 0;
	if (c->on_close)
		c->on_close(c);
}

static void conn_finish_close(conn_t *c)
{
	if (c->writing)
		return; /* conn_write_cb comes back here */
	if (c->out.sb.size) {
		conn_unlink_dirty(c);
		conn_write_now(c);
		if (c->writing)
			return;
	}
	conn_unlink_dirty(c);
	c->pipe.data = c;
	uv_close((uv_handle_t *)&c->pipe, conn_close_cb);
}

void conn_close(conn_t *c)
{
	if (c->closing)
		return;
	c->closing = true;
	if (!c->paused)
		uv_read_stop((uv_stream_t *)&c->pipe);
	conn_finish_close(c);
}

/*
 * True when the peer on fd is in group gid through its supplementary groups
 * (SO_PEERGROUPS, Linux 4.13): an admitted group is usually a supplementary
 * one, not the connecting user's primary group.
 */
#define CONN_PEER_GROUPS_MAX 256
static bool conn_peer_in_group(int fd, gid_t gid)
{
#ifdef SO_PEERGROUPS
	gid_t groups[CONN_PEER_GROUPS_MAX];
	socklen_t len = sizeof(groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
		return false; /* ERANGE (more groups than we look at) or old kernel */
	for (size_t i = 0; i < len / sizeof(gid_t); i++)
		if (groups[i] == gid)
			return true;
#endif
	return false;
}

int conn_check_peer(conn_t *c, long allow_gid)
{
	uv_os_fd_t fd;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (uv_fileno((uv_handle_t *)&c->pipe, &fd) < 0)
		return -EBADF;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -errno;
	if (cred.uid == getuid())
		return 0;
	if (allow_gid >= 0 &&
	    (cred.gid == (gid_t)allow_gid || conn_peer_in_group(fd, (gid_t)allow_gid)))
		return 0;
	diag_warn("conn: refused a connection from uid %u (pid %ld)", (unsigned)cred.uid,
	         (long)cred.pid);
	return -EPERM;
}

long conn_peer_pid(conn_t *c)
{
	uv_os_fd_t fd;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (uv_fileno((uv_handle_t *)&c->pipe, &fd) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return 0;
	return (long)cred.pid;
}

/*
 * Removes a socket file left by a killed process: when connecting to it is
 * refused nobody listens, so it is stale. Returns -EADDRINUSE when someone
 * answers.
 */
static int listener_clear_stale(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	int err = errno;
	close(fd);
	if (rc == 0)
		return -EADDRINUSE;
	if (err != ECONNREFUSED && err != ENOENT)
		return -err;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static void listener_connection_cb(uv_stream_t *s, int status)
{
	listener_t *l = s->data;
	if (status < 0) {
		diag_warn("listen: %s", uv_strerror(status));
		return;
	}
	l->on_accept(l);
}

int listener_open(listener_t *l, uv_loop_t *loop, const char *path, listener_cb on_accept)
{
	if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return -ENAMETOOLONG;
	int rc = listener_clear_stale(path);
	if (rc < 0)
		return rc;
	l->loop = loop;
	l->on_accept = on_accept;
	if (l->allow_gid == 0)
		l->allow_gid = -1;
	conn_flusher_ensure(loop);
	uv_pipe_init(loop, &l->pipe, 0);
	l->pipe.data = l;
	mode_t old = umask(0077); /* the socket is born 0600: no window */
	rc = uv_pipe_bind(&l->pipe, path);
	umask(old);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&l->pipe, CONN_LISTEN_BACKLOG, listener_connection_cb);
	if (rc < 0) {
		uv_close((uv_handle_t *)&l->pipe, NULL);
		return rc;
	}
	chmod(path, 0600);
	struct stat st;
	memcpy(l->path, path, strlen(path) + 1);
	l->ino = lstat(path, &st) == 0 ? (unsigned long long)st.st_ino : 0;
	return 0;
}

void listener_close(listener_t *l)
{
	struct stat st;
	if (l->ino && lstat(l->path, &st) == 0 && (unsigned long long)st.st_ino == l->ino)
		unlink(l->path);
	l->ino = 0;
	if (!uv_is_closing((uv_handle_t *)&l->pipe))
		uv_close((uv_handle_t *)&l->pipe, NULL);
}

int conn_accept(listener_t *l, conn_t *c)
{
	uv_pipe_init(l->loop, &c->pipe, 0);
	c->pipe.data = c;
	int rc = uv_accept((uv_stream_t *)&l->pipe, (uv_stream_t *)&c->pipe);
	if (rc == 0)
		rc = conn_check_peer(c, l->allow_gid);
	if (rc == 0)
		rc = conn_start(c);
	if (rc < 0) {
		c->closing = true;
		uv_close((uv_handle_t *)&c->pipe, conn_close_cb);
	}
	return rc;
}

static void link_connect(link_t *k);

static void link_timer_cb(uv_timer_t *t)
{
	link_connect(t->data);
}

static void link_retry_later(link_t *k)
{
	if (k->stopping)
		return;
	uint64_t wait_ms = k->backoff_ms;
	if (k->nobody_listens && wait_ms > CONN_LISTEN_WAIT_MAX_MS)
		wait_ms = CONN_LISTEN_WAIT_MAX_MS;
	uv_timer_start(&k->timer, link_timer_cb, wait_ms, 0);
	k->backoff_ms *= 2;
	if (k->backoff_ms > CONN_BACKOFF_MAX_MS)
		k->backoff_ms = CONN_BACKOFF_MAX_MS;
}

static void link_conn_closed(conn_t *c)
{
	link_t *k = c->data;
	bool was_up = k->up;
	k->up = false;
	if (was_up && uv_now(k->loop) - k->up_since_ms >= CONN_BACKOFF_MAX_MS)
		k->backoff_ms = CONN_BACKOFF_MIN_MS;
	if (was_up && k->on_down)
		k->on_down(k);
	link_retry_later(k);
}

static void link_connect_cb(uv_connect_t *req, int status)
{
	link_t *k = req->data;
	k->nobody_listens = status == UV_ENOENT || status == UV_ECONNREFUSED;
	if (status == 0)
		status = conn_check_peer(&k->conn, -1);
	if (status == 0)
		status = conn_start(&k->conn);
	if (status < 0) {
		diag_debug("link %s: %s", k->path, uv_strerror(status));
		conn_close(&k->conn);
		return;
	}
	k->up = true;
	k->up_since_ms = uv_now(k->loop);
	if (k->on_up)
		k->on_up(k);
}

static void link_connect(link_t *k)
{
	if (k->stopping)
		return;
	k->conn.data = k;
	conn_init(&k->conn, k->loop, k->on_frame, link_conn_closed);
	uv_pipe_init(k->loop, &k->conn.pipe, 0);
	k->conn.pipe.data = &k->conn;
	k->creq.data = k;
	uv_pipe_connect(&k->creq, &k->conn.pipe, k->path, link_connect_cb);
}

int link_start(link_t *k, uv_loop_t *loop, const char *path, conn_frame_cb on_frame,
               link_cb on_up, link_cb on_down)
{
	k->loop = loop;
	if (strlen(path) >= sizeof(k->path))
		return -ENAMETOOLONG;
	memcpy(k->path, path, strlen(path) + 1);
	k->on_frame = on_frame;
	k->on_up = on_up;
	k->on_down = on_down;
	k->backoff_ms = CONN_BACKOFF_MIN_MS;
	k->up = false;
	k->stopping = false;
	k->nobody_listens = false;
	uv_timer_init(loop, &k->timer);
	k->timer.data = k;
	link_connect(k);
	return 0;
}

void link_reset(link_t *k)
{
	if (k->up)
		conn_close(&k->conn);
}

void link_stop(link_t *k)
{
	k->stopping = true;
	uv_timer_stop(&k->timer);
	if (!uv_is_closing((uv_handle_t *)&k->conn.pipe))
		conn_close(&k->conn);
	uv_close((uv_handle_t *)&k->timer, NULL);
}
