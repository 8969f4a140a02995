/*
 * snapshot.c - the snapshotter's snapshot files (the format is described at
 * the top of common/snapfile.c).
 *
 * Taking one: when at least snapshot_every events were applied since the
 * last snapshot taken, the chain hash at the hwm is known (the bus's batch
 * carried "head") and no write is running, the state is packed with
 * ledger_pack() on the loop thread (the state must not change while it is
 * read) and the bytes are written with snapfile_write() in libuv's thread
 * pool, so events keep being applied meanwhile. A snapshot that is due while
 * a write runs is taken at the next point whose chain hash is known after it.
 * A failed pack (memory) or write is logged, and tried again at the next
 * such point.
 *
 * Snapshots also start at least interval_ms apart (--snapshot-interval-ms,
 * default 1 s): under a load of 300,000 events/s "every 1,000 events" would
 * mean hundreds of files and fsyncs a second, competing with the log's own
 * fsyncs for the disk and with the resolver for the CPU, while a second of
 * events replays in a fraction of a second. One held back by the interval is
 * taken when it ends (a timer), at the hwm reached by then.
 *
 * Loading at start-up: the newest snapshot that reads back (checksum,
 * version, name) and decodes is used; others are skipped with a warning
 * naming the file and why, and left on disk for examination. Whether it
 * belongs to this log is checked by the bus (it compares the chain hash the
 * hello reports with the logger's and sends "reset" when they differ).
 */
#include "snapfile.h"
#include "snapshotter.h"

#include "diag.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

#define SNAPSHOT_NS_PER_MS 1e6

static const char *snapshot_why(int rc)
{
	switch (rc) {
	case -EBADMSG: return "damaged (magic, size, name or checksum)";
	case -EPROTONOSUPPORT: return "unknown version";
	case -EINVAL: return "its state does not decode";
	default: return strerror(-rc);
	}
}

/* Reads snapshot seq into a new ledger and its chain hash: 0, or -errno. */
static int snapshot_load_one(snapshotter_t *s, uint64_t seq, ledger_t **out,
			     uint8_t chain[LOGFILE_HASH_BYTES])
{
	snapfile_t f;
	int rc = snapfile_read(s->cfg->data_dir, seq, &f);
	if (rc == 0)
		rc = snapfile_to_ledger(&f, out);
	if (rc == 0)
		memcpy(chain, f.chain, LOGFILE_HASH_BYTES);
	snapfile_free(&f);
	return rc;
}

static void snapshot_use(snapshotter_t *s, ledger_t *l, uint64_t seq,
			 const uint8_t chain[LOGFILE_HASH_BYTES], uint64_t load_ns)
{
	ledger_free(s->ledger);
	s->ledger = l;
	memcpy(s->chain, chain, LOGFILE_HASH_BYTES);
	s->chain_known = true;
	s->snapshot_seq = s->base_seq = seq;
	diag_info("loaded snapshot %" PRIu64 " (%zu accounts) in %.1f ms", seq,
		 ledger_account_count(l), (double)load_ns / SNAPSHOT_NS_PER_MS);
}

int snapshot_load(snapshotter_t *s)
{
	uint64_t seqs[SNAPFILE_LIST_MAX];
	int n = snapfile_list(s->cfg->data_dir, seqs, SNAPFILE_LIST_MAX);
	if (n < 0 && n != -ENOENT)
		diag_warn("%s/" SNAPFILE_DIR ": %s; starting empty", s->cfg->data_dir, strerror(-n));
	for (int i = 0; i < n; i++) {
		ledger_t *l = NULL;
		uint8_t chain[LOGFILE_HASH_BYTES];
		uint64_t t0 = uv_hrtime();
		int rc = snapshot_load_one(s, seqs[i], &l, chain);
		if (rc == -ENOMEM)
			return rc;
		if (rc == 0) {
			snapshot_use(s, l, seqs[i], chain, uv_hrtime() - t0);
			return 0;
		}
		diag_warn("snapshot %s/" SNAPFILE_DIR "/%020" PRIu64 ".snap: %s; skipped",
			 s->cfg->data_dir, seqs[i], snapshot_why(rc));
	}
	s->chain_known = true; /* the empty state: chain hash 0 at seq 0 */
	memset(s->chain, 0, sizeof(s->chain));
	return 0;
}

static void snapshot_work(uv_work_t *req)
{
	snapshotter_t *s = req->data;
	snapshotter_job_t *j = &s->job;
	uint64_t t0 = uv_hrtime();
	j->result = snapfile_write(s->cfg->data_dir, j->seq, j->chain, j->body.data, j->body.size);
	j->write_ns = uv_hrtime() - t0;
}

static void snapshot_written(snapshotter_t *s, snapshotter_job_t *j)
{
	if (j->epoch != s->epoch) {
		/* Taken from a state the bus has since reset: it must never be loaded. */
		diag_warn("snapshot %" PRIu64 " was of a state that was reset: removed", j->seq);
		snapfile_remove(s->cfg->data_dir, j->seq);
		return;
	}
	if (j->result < 0) {
		diag_error("snapshot %" PRIu64 ": %s", j->seq, strerror(-j->result));
		s->stat_failed++;
		s->base_seq = s->snapshot_seq;
		return;
	}
	s->snapshot_seq = j->seq;
	s->stat_written++;
	s->stat_last_written_ms = snapshot_wall_ms();
	s->stat_last_ns = j->pack_ns + j->write_ns;
	diag_info("snapshot %" PRIu64 ": %zu bytes, pack %.1f ms, write %.1f ms", j->seq,
		 j->body.size, (double)j->pack_ns / SNAPSHOT_NS_PER_MS,
		 (double)j->write_ns / SNAPSHOT_NS_PER_MS);
}

uint64_t snapshot_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void snapshot_after_work(uv_work_t *req, int status)
{
	snapshotter_t *s = req->data;
	snapshotter_job_t *j = &s->job;
	s->writing = false;
	if (status < 0)
		j->result = status; /* cancelled: never happens, nothing cancels it */
	snapshot_written(s, j);
	msgpack_sbuffer_destroy(&j->body);
	if (s->stopping) {
		uv_stop(s->loop);
		return;
	}
	s->written_cb(s);
	snapshot_maybe_take(s);
}

static bool snapshot_due(const snapshotter_t *s)
{
	uint64_t hwm = ledger_last_seq(s->ledger);
	return !s->writing && !s->stopping && s->chain_known && hwm > s->base_seq &&
	       hwm - s->base_seq >= s->cfg->snapshot_every;
}

static void snapshot_interval_cb(uv_timer_t *t)
{
	snapshot_maybe_take(t->data);
}

/* True when the interval since the last start is over; else arms the timer. */
static bool snapshot_interval_over(snapshotter_t *s)
{
	uint64_t now = uv_now(s->loop);
	uint64_t next = s->last_start_ms + s->cfg->interval_ms;
	if (s->last_start_ms == 0 || now >= next)
		return true;
	if (!uv_is_active((uv_handle_t *)&s->interval_timer))
		uv_timer_start(&s->interval_timer, snapshot_interval_cb, next - now, 0);
	return false;
}

/* The packer's writer: remembers a failed allocation, which the packer
 * would otherwise ignore, leaving a hole in the body. */
static int snapshot_body_write(void *data, const char *buf, size_t len)
{
	snapshotter_job_t *j = data;
	int rc = msgpack_sbuffer_write(&j->body, buf, len);
	if (rc < 0)
		j->pack_failed = true;
	return rc;
}

/* Packs the state at the hwm into s->job: 0, or -ENOMEM (nothing to free). */
static int snapshot_pack(snapshotter_t *s)
{
	snapshotter_job_t *j = &s->job;
	memset(j, 0, sizeof(*j));
	j->req.data = s;
	j->seq = ledger_last_seq(s->ledger);
	j->epoch = s->epoch;
	memcpy(j->chain, s->chain, LOGFILE_HASH_BYTES);
	uint64_t t0 = uv_hrtime();
	msgpack_sbuffer_init(&j->body);
	msgpack_packer pk;
	msgpack_packer_init(&pk, j, snapshot_body_write);
	ledger_pack(s->ledger, &pk);
	j->pack_ns = uv_hrtime() - t0;
	if (!j->pack_failed)
		return 0;
	msgpack_sbuffer_destroy(&j->body);
	return -ENOMEM;
}

void snapshot_maybe_take(snapshotter_t *s)
{
	if (!snapshot_due(s) || !snapshot_interval_over(s))
		return;
	s->last_start_ms = uv_now(s->loop);
	int rc = snapshot_pack(s);
	if (rc == 0)
		rc = uv_queue_work(s->loop, &s->job.req, snapshot_work, snapshot_after_work);
	if (rc < 0) {
		diag_error("snapshot %" PRIu64 ": %s; tried again later", s->job.seq,
			  uv_strerror(rc));
		if (rc != -ENOMEM)
			msgpack_sbuffer_destroy(&s->job.body);
		return;
	}
	s->base_seq = s->job.seq;
	s->writing = true;
}
