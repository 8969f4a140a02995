/*
 * drive.c - the connections, the requests in flight and the load's pacing
 * of `esbank bench` (see drive.h).
 */
#include "drive.h"

#include "conn.h"
#include "diag.h"
#include "msg.h"
#include "output.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define BENCH_TICK_MS          1
#define BENCH_WATCHDOG_MS      1000
#define BENCH_STALL_MS         30000 /* no reply this long: give up */
#define BENCH_ZONE_CHUNK_BYTES 4096

typedef struct {
	uint64_t t0_ns; /* sent, or due (open loop) */
	uint64_t gen;
	uint32_t account;
	uint32_t n; /* transfers in a "transfers" request (--batch); 0 otherwise */
	uint8_t op;
	bool busy;
} drive_slot_t;

struct drive_conn {
	conn_t conn;
	drive_t *d;
	uv_connect_t creq;
	drive_slot_t *slots; /* cfg->inflight of them */
	uint32_t *free;      /* free slot numbers, a stack */
	uint32_t nfree;
	bool inited;
	msgpack_zone zone;
};

void drive_fail(drive_t *d, int exit_code, const char *fmt, ...)
{
	va_list ap;

	if (d->mode == DRIVE_DONE)
		return;
	if (d->cfg->progress)
		fputs("\r\033[K", stderr);
	fputs("esbank: bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	d->rc = exit_code;
	drive_stop(d);
}

/* ---- slots and requests ---- */

static uint64_t drive_slot_take(drive_conn_t *dc, bench_op_t op, uint32_t account, uint64_t t0_ns)
{
	assert(dc->nfree > 0);
	uint32_t i = dc->free[--dc->nfree];
	drive_slot_t *s = &dc->slots[i];

	assert(!s->busy);
	*s = (drive_slot_t){
	    .t0_ns = t0_ns, .gen = s->gen, .account = account, .op = op, .busy = true};
	/* The watchdog counts from the later of the last reply and the first request. */
	if (dc->d->outstanding++ == 0)
		dc->d->last_reply_ns = uv_hrtime();
	return s->gen * dc->d->cfg->inflight + i + 1;
}

/* The slot that id names, or NULL when it names no request in flight. */
static drive_slot_t *drive_slot_find(drive_conn_t *dc, uint64_t id)
{
	uint64_t n = dc->d->cfg->inflight;

	if (id == 0)
		return NULL;
	drive_slot_t *s = &dc->slots[(id - 1) % n];
	return s->busy && s->gen == (id - 1) / n ? s : NULL;
}

static void drive_slot_put(drive_conn_t *dc, drive_slot_t *s)
{
	s->busy = false;
	s->gen++;
	dc->free[dc->nfree++] = (uint32_t)(s - dc->slots);
	dc->d->outstanding--;
}

bool drive_room(const drive_conn_t *dc)
{
	return dc->nfree > 0;
}

static msgpack_packer *drive_pack_begin(drive_conn_t *dc, bench_op_t op, uint32_t nfields,
					uint64_t id)
{
	msgpack_packer *pk = conn_pack_begin(&dc->conn);
	msgpack_pack_map(pk, 2 + nfields);
	msg_pack_kv_str(pk, "op", mix_op_name(op));
	msg_pack_kv_u64(pk, "id", id);
	return pk;
}

msgpack_packer *drive_request_begin(drive_conn_t *dc, bench_op_t op, uint32_t account,
				    uint32_t nfields)
{
	uint64_t id = drive_slot_take(dc, op, account, uv_hrtime());
	return drive_pack_begin(dc, op, nfields, id);
}

void drive_request_end(drive_conn_t *dc)
{
	conn_pack_end(&dc->conn);
}

/* --batch: one "transfers" request of up to cfg->batch transfers. */
static void drive_send_batch(drive_t *d, drive_conn_t *dc, uint64_t t0_ns)
{
	uint64_t n = d->cfg->batch;
	if (d->cfg->count && d->cfg->count - d->issued < n)
		n = d->cfg->count - d->issued;
	uint64_t id = drive_slot_take(dc, BENCH_OP_TRANSFER, 0, t0_ns);
	dc->slots[(id - 1) % d->cfg->inflight].n = (uint32_t)n;
	msgpack_packer *pk = conn_pack_begin(&dc->conn);
	msgpack_pack_map(pk, 3);
	msg_pack_kv_str(pk, "op", "transfers");
	msg_pack_kv_u64(pk, "id", id);
	msg_pack_str(pk, "transfers");
	msgpack_pack_array(pk, (uint32_t)n);
	for (uint64_t i = 0; i < n; i++) {
		mix_req_t r;
		mix_next(&d->cfg->mix, &d->rng, d->cfg->accounts, &r);
		msgpack_pack_map(pk, 3);
		msg_pack_kv_str(pk, "from", d->numbers[r.from]);
		msg_pack_kv_str(pk, "to", d->numbers[r.to]);
		msg_pack_kv_i64(pk, "amount", r.amount);
	}
	conn_pack_end(&dc->conn);
	d->issued += n;
}

static void drive_send_load(drive_t *d, drive_conn_t *dc, uint64_t t0_ns)
{
	mix_req_t r;

	if (d->cfg->batch > 1) {
		drive_send_batch(d, dc, t0_ns);
		return;
	}
	mix_next(&d->cfg->mix, &d->rng, d->cfg->accounts, &r);
	uint64_t id = drive_slot_take(dc, r.op, 0, t0_ns);
	msgpack_packer *pk;
	switch (r.op) {
	case BENCH_OP_TRANSFER:
		pk = drive_pack_begin(dc, r.op, 3, id);
		msg_pack_kv_str(pk, "from", d->numbers[r.from]);
		msg_pack_kv_str(pk, "to", d->numbers[r.to]);
		msg_pack_kv_i64(pk, "amount", r.amount);
		break;
	case BENCH_OP_WITHDRAW:
		pk = drive_pack_begin(dc, r.op, 2, id);
		msg_pack_kv_str(pk, "account", d->numbers[r.from]);
		msg_pack_kv_i64(pk, "amount", r.amount);
		break;
	default:
		pk = drive_pack_begin(dc, r.op, 1, id);
		msg_pack_kv_str(pk, "account", d->numbers[r.from]);
		break;
	}
	conn_pack_end(&dc->conn);
	d->issued++;
}

/* ---- pacing ---- */

/* Closed loop: keeps every slot of dc busy until the count or the time is up. */
static void drive_fill_closed(drive_t *d, drive_conn_t *dc)
{
	while (dc->nfree > 0 && !d->stopping) {
		uint64_t now = uv_hrtime();
		if (d->cfg->count ? d->issued >= d->cfg->count : now >= d->deadline_ns) {
			d->stopping = true;
			break;
		}
		drive_send_load(d, dc, now);
	}
}

/* A connection with a free slot, taking them in turn; NULL when none has one. */
static drive_conn_t *drive_conn_free(drive_t *d)
{
	for (uint64_t k = 0; k < d->cfg->connections; k++) {
		drive_conn_t *dc = &d->conns[d->rr];
		d->rr = (d->rr + 1) % d->cfg->connections;
		if (dc->nfree > 0)
			return dc;
	}
	return NULL;
}

/* Open loop: sends every request that is due, as long as slots are free. */
static void drive_fill_scheduled(drive_t *d)
{
	uint64_t now = uv_hrtime();

	while (!d->stopping) {
		uint64_t due_ns =
		    d->start_ns + (uint64_t)((double)d->issued * 1e9 / d->cfg->rate);
		if (d->cfg->count ? d->issued >= d->cfg->count : due_ns >= d->deadline_ns) {
			d->stopping = true;
			break;
		}
		drive_conn_t *dc = due_ns <= now ? drive_conn_free(d) : NULL;
		if (!dc)
			break;
		drive_send_load(d, dc, due_ns);
	}
}

static void drive_fill(drive_t *d, drive_conn_t *dc)
{
	switch (d->mode) {
	case DRIVE_SETUP: d->cbs.fill_cb(d->cbs.ctx, dc); break;
	case DRIVE_LOAD:
		if (d->cfg->rate > 0)
			drive_fill_scheduled(d);
		else
			drive_fill_closed(d, dc);
		break;
	default: break;
	}
}

void drive_fill_all(drive_t *d)
{
	for (uint64_t k = 0; k < d->cfg->connections && d->mode != DRIVE_DONE; k++)
		drive_fill(d, &d->conns[k]);
}

static void drive_finish_if_drained(drive_t *d)
{
	if (d->mode != DRIVE_LOAD || !d->stopping || d->outstanding > 0)
		return;
	d->end_ns = uv_hrtime();
	drive_stop(d);
}

static void drive_tick_cb(uv_timer_t *t)
{
	drive_t *d = t->data;

	drive_fill_scheduled(d);
	drive_finish_if_drained(d);
}

void drive_load_start(drive_t *d, const bench_number_t *numbers)
{
	d->numbers = numbers;
	d->mode = DRIVE_LOAD;
	d->start_ns = uv_hrtime();
	d->deadline_ns = d->start_ns + (uint64_t)(d->cfg->duration_s * 1e9);
	if (d->cfg->rate > 0)
		uv_timer_start(&d->tick, drive_tick_cb, BENCH_TICK_MS, BENCH_TICK_MS);
	drive_fill_all(d);
	drive_finish_if_drained(d);
}

/* ---- replies ---- */

/* Decodes one reply and finds its request; NULL after failing the run. */
static drive_slot_t *drive_reply_slot(drive_conn_t *dc, const char *body, size_t len,
				      msgpack_object *reply)
{
	drive_t *d = dc->d;
	char code[OUTPUT_FIELD_MAX];
	uint64_t id;

	msgpack_zone_clear(&dc->zone);
	if (msg_decode_map(body, len, &dc->zone, reply) < 0 || msg_get_u64(reply, "id", &id) < 0) {
		drive_fail(d, EXIT_TEMPORARY,
			   "the server sent a reply that is not a msgpack "
			   "map with an id");
		return NULL;
	}
	if (id == 0) {
		drive_fail(d, EXIT_BUG, "the server could not read a request (%s)",
			   output_field(reply, "error", code));
		return NULL;
	}
	drive_slot_t *s = drive_slot_find(dc, id);
	if (!s)
		drive_fail(
		    d, EXIT_TEMPORARY,
		    "the server replied to id %" PRIu64 ", which names no request in flight", id);
	return s;
}

/* A "transfers" reply: each transfer's outcome, all with the request's latency. */
static void drive_record_batch(drive_t *d, const drive_slot_t *done, const msgpack_object *reply,
			       uint64_t lat_ns)
{
	const msgpack_object *res = msg_get(reply, "results");
	bool each = res && res->type == MSGPACK_OBJECT_ARRAY && res->via.array.size == done->n;
	size_t whole = report_outcome(reply); /* an error for the whole request */
	for (uint32_t i = 0; i < done->n; i++)
		report_record(d->report, BENCH_OP_TRANSFER,
			      each ? report_outcome(&res->via.array.ptr[i]) : whole, lat_ns);
}

static void drive_on_frame(conn_t *c, const char *body, size_t len)
{
	drive_conn_t *dc = c->data;
	drive_t *d = dc->d;
	msgpack_object reply;

	drive_slot_t *s = drive_reply_slot(dc, body, len, &reply);
	if (!s)
		return;
	uint64_t now = uv_hrtime();
	drive_slot_t done = *s;
	size_t outcome = report_outcome(&reply);
	d->last_reply_ns = now;
	drive_slot_put(dc, s);
	if (done.op >= BENCH_LOAD_OPS) {
		d->cbs.reply_cb(d->cbs.ctx, (bench_op_t)done.op, done.account, &reply, outcome);
	} else {
		uint64_t lat_ns = now > done.t0_ns ? now - done.t0_ns : 0;
		if (done.n)
			drive_record_batch(d, &done, &reply, lat_ns);
		else
			report_record(d->report, (bench_op_t)done.op, outcome, lat_ns);
	}
	drive_fill(d, dc);
	drive_finish_if_drained(d);
}

/* ---- connections, the watchdog, ^C ---- */

static void drive_watchdog_cb(uv_timer_t *t)
{
	drive_t *d = t->data;

	if (d->outstanding == 0 || drive_elapsed_ns(d->last_reply_ns) / 1000000 < BENCH_STALL_MS)
		return;
	drive_fail(d, EXIT_TEMPORARY,
		   "no reply from the server for %d s, %" PRIu64 " requests outstanding",
		   BENCH_STALL_MS / 1000, d->outstanding);
}

static void drive_sigint_cb(uv_signal_t *h, int signum)
{
	drive_t *d = h->data;

	(void)signum;
	if (d->mode != DRIVE_LOAD || d->stopping) {
		drive_fail(d, EXIT_TEMPORARY, "interrupted");
		return;
	}
	d->interrupted = true;
	d->stopping = true;
	drive_finish_if_drained(d);
}

static void drive_up(drive_t *d)
{
	d->mode = DRIVE_SETUP;
	d->last_reply_ns = uv_hrtime();
	uv_timer_start(&d->watchdog, drive_watchdog_cb, BENCH_WATCHDOG_MS, BENCH_WATCHDOG_MS);
	d->cbs.up_cb(d->cbs.ctx);
}

static void drive_on_close(conn_t *c)
{
	drive_conn_t *dc = c->data;

	msgpack_zone_destroy(&dc->zone);
	drive_fail(dc->d, EXIT_TEMPORARY, "the server closed a connection");
}

static void drive_connect_cb(uv_connect_t *req, int status)
{
	drive_conn_t *dc = req->data;
	drive_t *d = dc->d;

	if (d->mode == DRIVE_DONE)
		return;
	if (status == 0)
		status = conn_start(&dc->conn);
	if (status < 0) {
		drive_fail(d, EXIT_TEMPORARY, "cannot connect to %s: %s%s", d->cfg->sock_path,
			   uv_strerror(status),
			   status == UV_ENOENT || status == UV_ECONNREFUSED
			       ? "\nesbank: is esbankd running? (see --run or ESBANK_RUN)"
			       : "");
		return;
	}
	if (++d->conns_up == d->cfg->connections)
		drive_up(d);
}

static int drive_conn_open(drive_t *d, drive_conn_t *dc)
{
	uint64_t inflight = d->cfg->inflight;

	dc->d = d;
	dc->slots = calloc(inflight, sizeof(*dc->slots));
	dc->free = malloc(inflight * sizeof(*dc->free));
	if (!dc->slots || !dc->free || !msgpack_zone_init(&dc->zone, BENCH_ZONE_CHUNK_BYTES))
		return -ENOMEM;
	for (uint32_t i = 0; i < inflight; i++)
		dc->free[i] = (uint32_t)inflight - 1 - i;
	dc->nfree = (uint32_t)inflight;
	dc->conn.data = dc;
	conn_init(&dc->conn, d->loop, drive_on_frame, drive_on_close);
	uv_pipe_init(d->loop, &dc->conn.pipe, 0);
	dc->conn.pipe.data = &dc->conn;
	dc->creq.data = dc;
	dc->inited = true;
	uv_pipe_connect(&dc->creq, &dc->conn.pipe, d->cfg->sock_path, drive_connect_cb);
	return 0;
}

void drive_stop(drive_t *d)
{
	d->mode = DRIVE_DONE;
	if (d->cfg->progress)
		fputs("\r\033[K", stderr);
	uv_handle_t *handles[] = {(uv_handle_t *)&d->tick, (uv_handle_t *)&d->watchdog,
				  (uv_handle_t *)&d->sigint};
	for (size_t i = 0; i < sizeof(handles) / sizeof(handles[0]); i++)
		if (!uv_is_closing(handles[i]))
			uv_close(handles[i], NULL);
	d->cbs.stop_cb(d->cbs.ctx);
	for (uint64_t k = 0; k < d->cfg->connections; k++)
		if (d->conns[k].inited)
			conn_close(&d->conns[k].conn);
}

int drive_init(drive_t *d, const bench_config_t *cfg, report_t *report, const drive_cbs_t *cbs)
{
	d->cfg = cfg;
	d->report = report;
	d->cbs = *cbs;
	d->conns = calloc(cfg->connections, sizeof(*d->conns));
	if (!d->conns)
		return -ENOMEM;
	mix_seed(&d->rng);
	return 0;
}

int drive_start(drive_t *d, uv_loop_t *loop)
{
	d->loop = loop;
	uv_timer_init(loop, &d->tick);
	uv_timer_init(loop, &d->watchdog);
	d->tick.data = d->watchdog.data = d;
	uv_signal_init(loop, &d->sigint);
	d->sigint.data = d;
	uv_signal_start(&d->sigint, drive_sigint_cb, SIGINT);
	for (uint64_t k = 0; k < d->cfg->connections; k++)
		if (drive_conn_open(d, &d->conns[k]) < 0)
			return -ENOMEM;
	return 0;
}

void drive_free(drive_t *d)
{
	for (uint64_t k = 0; d->conns && k < d->cfg->connections; k++) {
		free(d->conns[k].slots);
		free(d->conns[k].free);
	}
	free(d->conns);
}
