/*
 * clients.c - clients of bus.sock: accept, read requests, send replies, limits.
 *
 * Limits: BUS_CLIENTS_MAX connections (one more gets `overloaded` and is
 * closed); BUS_CLIENT_INFLIGHT_MAX requests in flight per connection (then
 * the bus stops reading it until replies drain); BUS_CLIENT_OUT_BYTES_MAX
 * reply bytes queued for a client that does not read (then it is
 * disconnected; nobody else waits); and a budget of reply bytes queued for
 * all clients together (BUS_CLIENTS_OUT_BYTES_TOTAL_MAX, or lower with
 * --clients-out-bytes-max): when a reply takes the total past it, the
 * clients with the largest backlogs, the slowest readers, are dropped, each
 * with a log line naming it (slot, pid) and its backlog, until it fits. A
 * reply that cannot be queued for lack of memory drops its client too: a
 * client's behaviour never makes the bus abort.
 *
 * Dropping a client discards what is queued for it: its socket is shut down
 * first, so the write waiting for it to read fails at once (EPIPE) and the
 * close, which frees its buffers, does not wait for a reader that never
 * comes. The total is kept as the sum of each client's backlog when it was
 * last sent to (conn.c may have written some out since: the sum can only be
 * too high); it is recounted from every client before anyone is dropped.
 */
#include "hub.h"

#include "config.h"
#include "diag.h"
#include "protocol.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

client_ref_t clients_ref(const client_t *c)
{
	return (client_ref_t){ .slot = c->slot, .gen = c->gen };
}

client_t *clients_get(hub_t *h, client_ref_t ref)
{
	if (ref.slot >= BUS_CLIENTS_MAX)
		return NULL;
	client_t *c = h->clients.slots[ref.slot];
	return (c && c->gen == ref.gen && !c->conn.closing) ? c : NULL;
}

/* Disconnects c, discarding what is queued for it (see the top). */
static void clients_drop(client_t *c, const char *why)
{
	hub_t *h = c->hub;
	uv_os_fd_t fd;

	diag_warn("client %u (pid %ld) dropped: %s; %zu reply bytes queued for it, %zu for all "
		 "clients (budget %zu)", c->slot, c->pid, why, c->conn.out_bytes,
		 h->clients.out_bytes, h->clients.out_bytes_max);
	h->clients.out_bytes -= c->out_counted;
	c->out_counted = 0;
	c->dropped = true;
	if (uv_fileno((uv_handle_t *)&c->conn.pipe, &fd) == 0)
		shutdown(fd, SHUT_RDWR);
	conn_close(&c->conn);
}

/* Brings the total up to date with c's backlog now. */
static void clients_count(hub_t *h, client_t *c)
{
	h->clients.out_bytes = h->clients.out_bytes - c->out_counted + c->conn.out_bytes;
	c->out_counted = c->conn.out_bytes;
}

/*
 * The client not yet dropped with the largest backlog; NULL when none has
 * any. It may be closing already (its peer shut down its side but does not
 * read): dropping it then frees what waits for it.
 */
static client_t *clients_slowest(hub_t *h)
{
	client_t *slowest = NULL;

	for (int i = 0; i < BUS_CLIENTS_MAX; i++) {
		client_t *c = h->clients.slots[i];
		if (c && !c->dropped && c->conn.out_bytes > 0 &&
		    (!slowest || c->conn.out_bytes > slowest->conn.out_bytes))
			slowest = c;
	}
	return slowest;
}

/* Recounts the total and drops the slowest readers until it fits the budget. */
static void clients_keep_budget(hub_t *h)
{
	client_t *c;

	for (int i = 0; i < BUS_CLIENTS_MAX; i++)
		if ((c = h->clients.slots[i]) && !c->dropped)
			clients_count(h, c);
	while (h->clients.out_bytes > h->clients.out_bytes_max && (c = clients_slowest(h)))
		clients_drop(c, "the slowest reader while all clients' replies pass the budget");
}

void clients_check_backlog(client_t *c)
{
	hub_t *h = c->hub;

	if (c->conn.closing)
		return;
	clients_count(h, c);
	if (c->conn.out_bytes > BUS_CLIENT_OUT_BYTES_MAX)
		clients_drop(c,
		             "it does not read its replies (more than BUS_CLIENT_OUT_BYTES_MAX)");
	if (h->clients.out_bytes > h->clients.out_bytes_max)
		clients_keep_budget(h);
}

void clients_send(hub_t *h, client_ref_t to, const char *reply, size_t n)
{
	client_t *c = clients_get(h, to);
	if (!c)
		return;
	size_t queued = c->conn.out.sb.size;
	conn_send(&c->conn, reply, n);
	if (c->conn.out.sb.size != queued + FRAME_HEADER_BYTES + n) {
		/* the output buffer could not grow: the frame is lost or cut */
		clients_count(h, c);
		clients_drop(c, "out of memory queueing a reply");
		return;
	}
	clients_check_backlog(c);
}

void clients_send_error(hub_t *h, client_ref_t to, uint64_t id, int err, const char *message)
{
	msg_buf_t b;
	msg_buf_init(&b);
	proto_pack_error(&b.pk, id, (proto_err_t)err, message);
	clients_send(h, to, b.sb.data, b.sb.size);
	msg_buf_free(&b);
}

void clients_done(hub_t *h, client_ref_t from)
{
	client_t *c = clients_get(h, from);
	if (!c)
		return;
	if (c->inflight > 0)
		c->inflight--;
	if (c->inflight < BUS_CLIENT_INFLIGHT_MAX / 2)
		conn_resume(&c->conn);
}

static void clients_on_frame(conn_t *conn, const char *body, size_t len)
{
	client_t *c = conn->data;
	hub_t *h = c->hub;
	/* Only "id" and "op" are read here: the bytes go on as they came (a
	 * "transfers" of 1,000 unpacked whole cost the bus a third of its time). */
	static const char *const keys[] = { "id", "op" };
	msgpack_object_kv kv[2];
	msgpack_object map;
	uint64_t id = 0;
	proto_op_t op = PROTO_OP_NONE;
	if (msg_peek_map(body, len, keys, 2, kv, &map) < 0) {
		clients_send_error(h, clients_ref(c), 0, PROTO_E_BAD_REQUEST,
		                   "the frame does not hold exactly one msgpack map");
		return;
	}
	proto_err_t e = proto_peek(&map, &id, &op);
	if (e != PROTO_OK) {
		clients_send_error(h, clients_ref(c), id, e,
		                   e == PROTO_E_UNKNOWN_OP
		                           ? "unknown op"
		                           : "a request needs an integer id and a string op");
		return;
	}
	c->inflight++;
	if (c->inflight >= BUS_CLIENT_INFLIGHT_MAX)
		conn_pause(&c->conn);
	h->clients.on_request(h, c, id, op, body, len);
}

static void clients_on_bad_frame(conn_t *conn)
{
	/* bad_frame is not a proto_err_t (it ends the connection), so this reply is packed here */
	msg_buf_t b;
	msg_buf_init(&b);
	msgpack_pack_map(&b.pk, 4);
	msg_pack_kv_u64(&b.pk, "id", 0);
	msg_pack_kv_bool(&b.pk, "ok", false);
	msg_pack_kv_str(&b.pk, "error", "bad_frame");
	msg_pack_kv_str(&b.pk, "message", "frame length must be from 1 to 1048576 bytes");
	conn_send(conn, b.sb.data, b.sb.size);
	msg_buf_free(&b);
}

static void clients_on_close(conn_t *conn)
{
	client_t *c = conn->data;
	hub_t *h = c->hub;
	h->clients.out_bytes -= c->out_counted;
	h->clients.slots[c->slot] = NULL;
	h->clients.count--;
	free(c);
}

static void clients_on_rejected_close(conn_t *conn)
{
	free(conn->data);
}

static int clients_free_slot(const hub_t *h)
{
	for (int i = 0; i < BUS_CLIENTS_MAX; i++)
		if (!h->clients.slots[i])
			return i;
	return -1;
}

static void clients_on_accept(listener_t *l)
{
	hub_t *h = l->data;
	client_t *c = calloc(1, sizeof(*c));
	if (!c)
		return;
	c->hub = h;
	c->conn.data = c;
	conn_init(&c->conn, h->loop, clients_on_frame, clients_on_close);
	c->conn.on_bad_frame = clients_on_bad_frame;
	int slot = clients_free_slot(h);
	c->slot = slot < 0 ? BUS_CLIENTS_MAX : (uint32_t)slot;
	c->gen = ++h->clients.gen;
	if (slot >= 0) {
		h->clients.slots[slot] = c;
		h->clients.count++;
	}
	if (slot < 0)
		c->conn.on_close = clients_on_rejected_close;
	if (conn_accept(l, &c->conn) < 0)
		return; /* on_close frees it */
	c->pid = conn_peer_pid(&c->conn);
	if (slot < 0) {
		diag_warn("too many clients (%d): refused one", BUS_CLIENTS_MAX);
		msg_buf_t b;
		msg_buf_init(&b);
		proto_pack_error(&b.pk, 0, PROTO_E_OVERLOADED, "too many connections");
		conn_send(&c->conn, b.sb.data, b.sb.size);
		msg_buf_free(&b);
		conn_close(&c->conn);
	}
}


/*
 * With --allow-group, members of that group must reach bus.sock: the run
 * directory becomes 0710 (search only: they cannot list or create) and
 * bus.sock 0660, both in that group. The peers' sockets stay 0600, and the
 * SO_PEERCRED check still refuses anyone else.
 */
static int clients_share_socket(const char *run_dir, const char *path, long gid)
{
	if (chown(run_dir, (uid_t)-1, (gid_t)gid) < 0 || chmod(run_dir, 0710) < 0 ||
	    chown(path, (uid_t)-1, (gid_t)gid) < 0 || chmod(path, 0660) < 0)
		return -errno;
	diag_info("admitting group %ld to bus.sock", gid);
	return 0;
}

int clients_start(hub_t *h, const char *run_dir, long allow_gid, size_t out_bytes_max,
                  clients_request_cb on_request)
{
	clients_t *cs = &h->clients;
	assert(out_bytes_max >= BUS_CLIENTS_OUT_BYTES_TOTAL_MIN &&
	       out_bytes_max <= BUS_CLIENTS_OUT_BYTES_TOTAL_MAX);
	cs->out_bytes_max = out_bytes_max;
	cs->on_request = on_request;
	int rc = config_mkdirs(run_dir, 0700);
	if (rc < 0)
		return rc;
	char *path = config_path(run_dir, "bus.sock");
	if (!path)
		return -ENOMEM;
	cs->listener.data = h;
	cs->listener.allow_gid = allow_gid;
	rc = listener_open(&cs->listener, h->loop, path, clients_on_accept);
	if (rc == 0 && allow_gid > 0)
		rc = clients_share_socket(run_dir, path, allow_gid);
	if (rc == 0)
		diag_info("listening on %s", path);
	free(path);
	clients_assert(cs);
	return rc;
}

void clients_stop(hub_t *h)
{
	listener_close(&h->clients.listener); /* removes bus.sock */
}
