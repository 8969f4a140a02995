/*
 * buscall.c - the gateway's calls in flight to the bus (see buscall.h).
 *
 * Wire format on the link (PROTOCOL.md): each request is one frame holding
 * {"op": string, "id": uint, ...fields}; each reply one frame holding
 * {"id": uint, "ok": bool, ...}. Ids start at 1 and grow; id n lives in
 * slot n % BUSCALLS_MAX of the table, and an id whose slot is taken is
 * skipped, so finding a reply's request is one array access. A reply whose
 * id is not in the table (timed out, cancelled, or id 0 for a frame the bus
 * could not read) is logged and dropped.
 */
#include "buscall.h"

#include "diag.h"
#include "msg.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define BUSCALL_ZONE_BYTES 4096
#define BUSCALL_ERROR_TEXT_MAX 64

static buscall_table_t *buscall_of_link(link_t *k)
{
	return (buscall_table_t *)((char *)k - offsetof(buscall_table_t, bus));
}

static void buscall_check(const buscall_table_t *t)
{
	assert(t->n <= BUSCALLS_MAX);
}

static buscall_t *buscall_find(buscall_table_t *t, uint64_t id)
{
	buscall_t *call = &t->slots[id % BUSCALLS_MAX];
	return id != 0 && call->id == id ? call : NULL;
}

/* Frees call's slot and runs its callback. */
static void buscall_finish(buscall_table_t *t, buscall_t *call, int status,
                           const msgpack_object *reply)
{
	buscall_reply_cb cb = call->cb;
	void *ctx = call->ctx;
	call->id = 0;
	t->n--;
	cb(ctx, status, reply);
}

static void buscall_frame_cb(conn_t *c, const char *body, size_t len)
{
	buscall_table_t *t = buscall_of_link((link_t *)((char *)c - offsetof(link_t, conn)));
	msgpack_zone zone;
	msgpack_object map;
	uint64_t id = 0;
	msgpack_zone_init(&zone, BUSCALL_ZONE_BYTES);
	if (msg_decode_map(body, len, &zone, &map) < 0 || msg_get_u64(&map, "id", &id) < 0) {
		diag_warn("bus: a reply without an id (%zu bytes); dropped", len);
		goto out;
	}
	buscall_t *call = buscall_find(t, id);
	if (!call) {
		char err[BUSCALL_ERROR_TEXT_MAX] = "";
		msg_get_strcpy(&map, "error", err, sizeof(err));
		if (id == 0) /* the bus could not read one of our frames */
			diag_warn("bus: reply to id 0: %s", err);
		else /* its client left, or it timed out */
			diag_debug("bus: reply to id %llu after its request ended",
			          (unsigned long long)id);
		goto out;
	}
	buscall_finish(t, call, 0, &map);
out:
	msgpack_zone_destroy(&zone);
}

/* Answers every request in flight whose deadline is before until_ms with status. */
static void buscall_fail_all(buscall_table_t *t, int status, uint64_t until_ms)
{
	for (size_t i = 0; i < BUSCALLS_MAX && t->n > 0; i++) {
		buscall_t *call = &t->slots[i];
		if (call->id != 0 && call->deadline_ms <= until_ms)
			buscall_finish(t, call, status, NULL);
	}
}

static void buscall_up_cb(link_t *k)
{
	buscall_table_t *t = buscall_of_link(k);
	t->up = true;
	diag_info("connected to the bus");
}

static void buscall_down_cb(link_t *k)
{
	buscall_table_t *t = buscall_of_link(k);
	if (t->up && !t->stopping)
		diag_warn("lost the bus; %zu requests in flight fail", t->n);
	t->up = false;
	buscall_fail_all(t, -ENOTCONN, UINT64_MAX);
	buscall_check(t);
}

static void buscall_tick_cb(uv_timer_t *timer)
{
	buscall_table_t *t = timer->data;
	if (t->n > 0)
		buscall_fail_all(t, -ETIMEDOUT, uv_now(t->loop));
	buscall_check(t);
}

int buscall_init(buscall_table_t *t, uv_loop_t *loop)
{
	t->loop = loop;
	t->next_id = 1;
	t->slots = calloc(BUSCALLS_MAX, sizeof(*t->slots));
	return t->slots ? 0 : -ENOMEM;
}

void buscall_free(buscall_table_t *t)
{
	free(t->slots);
	t->slots = NULL;
}

int buscall_start(buscall_table_t *t, const char *sock_path)
{
	int rc = link_start(&t->bus, t->loop, sock_path, buscall_frame_cb, buscall_up_cb, buscall_down_cb);
	if (rc < 0)
		return rc;
	t->tick.data = t;
	uv_timer_init(t->loop, &t->tick);
	uv_timer_start(&t->tick, buscall_tick_cb, BUSCALL_TICK_MS, BUSCALL_TICK_MS);
	return 0;
}

int buscall_attach(buscall_table_t *t, int fd)
{
	link_t *k = &t->bus;
	k->loop = t->loop;
	k->conn.data = k;
	conn_init(&k->conn, t->loop, buscall_frame_cb, NULL);
	uv_pipe_init(t->loop, &k->conn.pipe, 0);
	int rc = uv_pipe_open(&k->conn.pipe, fd);
	if (rc == 0)
		rc = conn_start(&k->conn);
	if (rc < 0)
		return rc;
	k->up = true;
	t->up = true;
	return 0;
}

void buscall_stop(buscall_table_t *t)
{
	t->stopping = true;
	link_stop(&t->bus);
}

int buscall_begin(buscall_table_t *t, const char *op, uint32_t nfields, uint64_t timeout_ms,
               buscall_reply_cb cb, void *ctx, uint64_t *id, msgpack_packer **pk)
{
	assert(cb && pk && id);
	if (!t->up)
		return -ENOTCONN;
	if (t->n >= BUSCALLS_MAX || t->bus.conn.out_bytes > BUSCALL_OUT_BYTES_MAX)
		return -EBUSY;
	while (t->slots[t->next_id % BUSCALLS_MAX].id != 0 || t->next_id == 0)
		t->next_id++;
	buscall_t *call = &t->slots[t->next_id % BUSCALLS_MAX];
	call->id = t->next_id++;
	call->deadline_ms = uv_now(t->loop) + timeout_ms;
	call->cb = cb;
	call->ctx = ctx;
	t->n++;
	msgpack_packer *p = conn_pack_begin(&t->bus.conn);
	msgpack_pack_map(p, 2 + nfields);
	msg_pack_kv_str(p, "op", op);
	msg_pack_kv_u64(p, "id", call->id);
	*id = call->id;
	*pk = p;
	buscall_check(t);
	return 0;
}

void buscall_end(buscall_table_t *t)
{
	conn_pack_end(&t->bus.conn);
}

void buscall_cancel(buscall_table_t *t, uint64_t id)
{
	buscall_t *call = buscall_find(t, id);
	if (call) {
		call->id = 0;
		t->n--;
	}
	buscall_check(t);
}
