/*
 * logger.c - the esbank-logger process: opens and checks events.log, listens
 * on RUN/logger.sock for the bus, and stops in order on SIGTERM/SIGINT (the
 * write in flight is finished and acknowledged first; events still pending
 * were never acknowledged and are dropped).
 *
 * Bus sessions (common/peer.h): only a connection that opens with the bus
 * hello, while no other bus session is open, starts a session; any other is
 * refused and changes nothing. A new session forgets the events not yet
 * durable and not in flight (the bus resends what it holds that is not
 * durable), and the hello waits for the write in flight, so its hwm is
 * exactly what is on disk and nothing later becomes durable behind the new
 * bus's back.
 */
#include "logger.h"
#include "config.h"
#include "diag.h"
#include "protocol.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOGGER_DIR_MODE 0700

static void logger_session_closed(peer_server_t *s, conn_t *c)
{
	logger_t *lg = s->data;
	(void)c;
	lg->greeted = false;
	lg->paused = false;
}

static void logger_session_opened(peer_server_t *s, conn_t *c)
{
	logger_t *lg = s->data;
	lg->greeted = false;
	lg->paused = false;
	logger_commit_forget(lg);
	if (!lg->busy)
		logger_send_hello(lg, c);
}

static void logger_shutdown(logger_t *lg)
{
	static bool done;
	if (done)
		return;
	done = true;
	if (lg->pending.events > 0)
		diag_warn("%zu events that were never durable are dropped", lg->pending.events);
	uv_close((uv_handle_t *)&lg->retry_timer, NULL);
	if (lg->check) { /* the log was not checked whole: nothing is written at the stop */
		logfile_check_abort(lg->check);
		lg->check = NULL;
		uv_close((uv_handle_t *)&lg->check_async, NULL);
	}
	logger_indexjob_stop(lg);
	uv_close((uv_handle_t *)&lg->sigterm, NULL);
	uv_close((uv_handle_t *)&lg->sigint, NULL);
	peer_stop(&lg->bus);
}

/* After each write: greets a waiting session, resumes a paused one, and
 * completes a shutdown that waited for the write. */
static void logger_after_write(logger_t *lg)
{
	conn_t *bus = peer_bus(&lg->bus);
	if (bus && !lg->greeted)
		logger_send_hello(lg, bus);
	if (bus && lg->paused && lg->pending.len <= LOGGER_PENDING_BYTES_MAX / 2) {
		conn_resume(bus);
		lg->paused = false;
	}
	if (lg->stopping)
		logger_shutdown(lg);
}

static void logger_signal_cb(uv_signal_t *s, int signum)
{
	logger_t *lg = s->data;
	if (lg->stopping)
		return;
	diag_info("signal %d: stopping%s", signum, lg->busy ? " after the write in flight" : "");
	lg->stopping = true;
	peer_stop_listening(&lg->bus);
	if (!lg->busy)
		logger_shutdown(lg);
}

/* Exit code for a failure to start: permanent (100) or temporary (111). */
static int logger_exit_code(int err)
{
	switch (err) {
	case -ENOTRECOVERABLE: /* the log could not be made durable: never retried */
	case -EBADMSG:
	case -EPROTONOSUPPORT:
	case -EACCES:
	case -EPERM:
	case -EROFS:
	case -ENOTDIR:
	case -ENAMETOOLONG:
		return EXIT_USAGE;
	default:
		return EXIT_TEMPORARY;
	}
}

/* What the log's check found (logfile_open, logfile_check_advance): r, or
 * -ENOTRECOVERABLE when the log could not be made durable. */
static int logger_report_open(logger_t *lg, const char *dir, int r, const logfile_report_t *rep)
{
	double secs = (double)(uv_hrtime() - lg->check_t0) / 1e9;
	if (r == 0)
		diag_info("%s/%s: %llu events checked in %.3f s%s", dir, LOGFILE_NAME,
		         (unsigned long long)lg->lf.last_seq, secs,
		         lg->lf.checkpoint_seq ? " (to the clean stop's checkpoint on its word)" : "");
	if (r == -EBADMSG) {
		diag_error("%s/%s is damaged at seq %llu (byte offset %llu), in history that was "
		          "acknowledged: refusing to start. To cut the log there, keeping a copy of "
		          "every byte cut: esbank log-repair --data %s",
		          dir, LOGFILE_NAME, (unsigned long long)rep->damage_seq,
		          (unsigned long long)rep->damage_offset, dir);
	} else if (r == -EAGAIN) {
		diag_error("%s/%s is in use by another logger", dir, LOGFILE_NAME);
	} else if (r < 0 && rep->not_durable) {
		diag_error("cannot make %s/%s durable (fdatasync or directory fsync): %s; its last "
		          "events may exist only in memory, so none is reported: refusing to start "
		          "(check the disk, then start again)", dir, LOGFILE_NAME, strerror(-r));
	} else if (r < 0) {
		diag_error("cannot open %s/%s: %s", dir, LOGFILE_NAME, strerror(-r));
	} else if (rep->torn_tail_cut) {
		diag_warn("%s/%s: cut a torn last %s: %llu bytes at offset %llu (from seq %llu, "
		         "never acknowledged)", dir, LOGFILE_NAME,
		         lg->lf.version == LOGFILE_VERSION_1 ? "record" : "batch",
		         (unsigned long long)rep->torn_bytes, (unsigned long long)rep->torn_offset,
		         (unsigned long long)rep->torn_seq);
	}
	return r < 0 && rep->not_durable ? -ENOTRECOVERABLE : r;
}

/* From a check thread: a chunk of the chain is verified (logger_check_cb). */
static void logger_check_progress(void *arg)
{
	logger_t *lg = arg;
	uv_async_send(&lg->check_async);
}

/*
 * The check ended with lf whole. The bus was told the end it would reach
 * ("end" in the hello); if the log ends elsewhere (a torn tail cut), or
 * appends were ignored meanwhile, the session ends: the bus's next hello
 * learns the log's end and it sends every event after it again.
 */
static void logger_check_done(logger_t *lg)
{
	lg->checked = true;
	logger_commit_forget(lg); /* appends start from the log's end */
	logger_indexjob_init(lg, lg->data_dir);
	conn_t *bus = peer_bus(&lg->bus);
	if (!bus || !lg->greeted)
		return;
	if (lg->lf.last_seq != lg->check_end || lg->check_skipped)
		peer_drop(&lg->bus, "the log's check ended elsewhere than the hello said, or "
		                    "appends came during it: the bus starts again from the log's end");
	else
		logger_broadcast_durable(lg);
}

/* The check's threads made progress: "durable" for the verified prefix. */
static void logger_check_cb(uv_async_t *a)
{
	logger_t *lg = a->data;
	logfile_report_t rep;
	uint64_t before = lg->lf.last_seq;
	if (!lg->check)
		return;
	int r = logfile_check_advance(&lg->lf, lg->check, &rep);
	if (r == 0) {
		if (lg->lf.last_seq > before)
			logger_broadcast_durable(lg);
		return;
	}
	lg->check = NULL;
	uv_close((uv_handle_t *)&lg->check_async, NULL);
	r = logger_report_open(lg, lg->data_dir, r < 0 ? r : 0, &rep);
	if (r < 0) {
		lg->exit_code = logger_exit_code(r);
		if (!lg->stopping) {
			lg->stopping = true;
			peer_stop_listening(&lg->bus);
		}
		logger_shutdown(lg);
		return;
	}
	logger_check_done(lg);
}

/*
 * Opens and checks the log; a long one's hashes are checked after this
 * returns, in threads, while the bus replays what is verified
 * (logfile_open_overlapped).
 */
static int logger_open_log(logger_t *lg, const char *dir)
{
	logfile_report_t rep;
	lg->check_t0 = uv_hrtime();
	lg->check_async.data = lg;
	int r = uv_async_init(lg->loop, &lg->check_async, logger_check_cb);
	if (r < 0)
		return r;
	r = logfile_open_overlapped(&lg->lf, dir, &rep, logger_check_progress, lg, &lg->check);
	if (!lg->check) {
		uv_close((uv_handle_t *)&lg->check_async, NULL);
		lg->checked = r == 0;
		return logger_report_open(lg, dir, r, &rep);
	}
	lg->check_end = logfile_check_end(lg->check);
	diag_info("%s/%s: the layout of its events checked in %.3f s; their hashes are checked "
	         "while the bus replays them", dir, LOGFILE_NAME,
	         (double)(uv_hrtime() - lg->check_t0) / 1e9);
	return 0;
}

static int logger_listen(logger_t *lg, const char *run_dir)
{
	lg->sock_path = config_path(run_dir, LOGGER_SOCK_NAME);
	if (!lg->sock_path)
		return -ENOMEM;
	lg->bus.data = lg;
	lg->bus.handlers = logger_handlers;
	lg->bus.on_open = logger_session_opened;
	lg->bus.on_close = logger_session_closed;
	int r = peer_listen(&lg->bus, lg->loop, PEER_ROLE_LOGGER, lg->sock_path);
	if (r < 0) {
		diag_error("cannot listen on %s: %s", lg->sock_path, uv_strerror(r));
		return r;
	}
	lg->sigterm.data = lg;
	lg->sigint.data = lg;
	uv_signal_init(lg->loop, &lg->sigterm);
	uv_signal_init(lg->loop, &lg->sigint);
	uv_signal_start(&lg->sigterm, logger_signal_cb, SIGTERM);
	uv_signal_start(&lg->sigint, logger_signal_cb, SIGINT);
	return 0;
}

static int logger_make_dirs(const logger_config_t *cfg)
{
	const char *dirs[] = { cfg->data_dir, cfg->run_dir };
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		int r = config_mkdirs(dirs[i], LOGGER_DIR_MODE);
		if (r < 0) {
			diag_error("cannot create %s: %s", dirs[i], strerror(-r));
			return r;
		}
	}
	return 0;
}

static void logger_report_stats(const logger_t *lg)
{
	if (lg->stat_batches == 0)
		return;
	diag_info("stopped: %llu events in %llu batches (%.1f per fsync, %.3f ms per write+fsync)",
	         (unsigned long long)lg->stat_events, (unsigned long long)lg->stat_batches,
	         (double)lg->stat_events / (double)lg->stat_batches,
	         (double)lg->stat_write_ns / 1e6 / (double)lg->stat_batches);
}

int logger_run(const logger_config_t *cfg)
{
	static logger_t lg;
	lg.loop = uv_default_loop();
	lg.data_dir = cfg->data_dir;
	int r = logger_make_dirs(cfg);
	if (r == 0)
		r = logger_open_log(&lg, cfg->data_dir);
	if (r < 0)
		return logger_exit_code(r);
	msg_buf_init(&lg.scratch);
	static const logger_commit_cbs_t cbs = {
		.durable_cb = logger_broadcast_durable,
		.fault_cb = logger_broadcast_fault,
		.written_cb = logger_after_write,
		.batch_cb = logger_index_batch,
	};
	if (lg.checked)
		logger_indexjob_init(&lg, cfg->data_dir); /* else at the check's end */
	r = logger_commit_init(&lg, &cbs);
	if (r == 0)
		r = logger_listen(&lg, cfg->run_dir);
	if (r < 0)
		return r == UV_EADDRINUSE ? EXIT_TEMPORARY : logger_exit_code(r);
	char hex[LOGGER_HEX_BYTES];
	sodium_bin2hex(hex, sizeof(hex), lg.lf.head_hash, LOGFILE_HASH_BYTES);
	if (lg.check)
		diag_info("listening on %s; the log holds %llu events, checked as the bus replays "
		         "them", lg.sock_path, (unsigned long long)lg.check_end);
	else
		diag_info("listening on %s; the log holds %llu events, head %s", lg.sock_path,
		         (unsigned long long)lg.lf.last_seq, hex);
	uv_run(lg.loop, UV_RUN_DEFAULT);
	unlink(lg.sock_path); /* we still hold the log's lock: no other logger is up */
	logger_report_stats(&lg);
	logger_index_close(&lg);
	if (lg.checked) /* the zeros cut and the checkpoint: only of a log checked whole */
		logger_commit_free(&lg);
	msg_buf_free(&lg.scratch);
	free(lg.sock_path);
	logfile_close(&lg.lf);
	uv_loop_close(lg.loop);
	return lg.exit_code;
}
