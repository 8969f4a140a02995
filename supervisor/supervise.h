/*
 * supervise.h - the children of esbankd: finding their executables,
 * starting them in order, watching them, and stopping them in order.
 *
 * Start order: logger, replicator, resolver, snapshotter, mailer, bus, http
 * (the replicator only with --replicate or --follow; http only when enabled
 * and its executable exists). With --follow, `esbank-replicator --rejoin`
 * runs once before anything starts; when it fails esbankd exits with its
 * code (100 stays 100, any other failure 111). Stop order, one phase at a time,
 * each phase waiting for its children to exit (SIGTERM, then SIGKILL after
 * SUP_STOP_TIMEOUT_MS): bus and http; resolver, snapshotter, mailer and replicator;
 * logger last, so that everything acknowledged reaches the log first.
 *
 * A child that exits 100 (EXIT_USAGE: a permanent error, such as a bad
 * configuration, damaged data or a port in use) is not restarted: esbankd
 * stops the whole group in order and exits 100, and its last line repeats
 * that child's last error line. A child that dies otherwise (111, 101, 0 or
 * a signal) is restarted, alone, after a back-off delay (restart.h); one
 * that dies more than RESTART_INTENSITY_MAX times within RESTART_PERIOD_MS
 * makes esbankd stop the whole group in order and exit 111. Nothing is
 * restarted once the group is stopping.
 *
 * The group is live (the "esbank is live" line, READY on --ready-fd,
 * "running" in esbankd.state) once the bus says live with every peer
 * connected, every child runs and http listens (ready.h, listening.h);
 * never before.
 *
 * Every child is started through esbankd's exec wrapper (child.h), so it dies
 * with esbankd. DATA/esbankd.lock and RUN/esbankd.lock keep a second esbankd
 * off the data and run directories (lock.h), taken before anything starts;
 * RUN/<name>.pid names each child (rundir.h); RUN/esbankd.state describes
 * them (state.h). See docs/supervision.md.
 */
#ifndef ESBANK_SUPERVISOR_SUPERVISE_H
#define ESBANK_SUPERVISOR_SUPERVISE_H

#include "output.h"
#include "ready.h"
#include "restart.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#define SUP_CHILDREN_MAX 8
#define SUP_ARGS_MAX 24
#define SUP_STOP_PHASES 3
#define SUP_STOP_TIMEOUT_MS 5000
#define SUP_DRAIN_TIMEOUT_MS 500 /* for children's last output lines */
#define SUP_RESTART_RETRY_MS 10  /* a restart waiting for the old handles to close */
#define SUP_PID_DIGITS_MAX 24
#define SUP_PATH_BYTES_MAX 4096
/* Test-only: caps the restart back-off (see docs/supervision.md). */
#define SUP_DELAY_MAX_ENV "ESBANK_RESTART_DELAY_MAX_MS"

typedef struct {
	const char *data_dir;
	const char *run_dir;
	const char *http;           /* address, or "off" */
	const char *snapshot_every; /* checked by main */
	const char *mail;           /* maildir | mailgun | smtp://... */
	const char *pwhash_cost;    /* interactive | moderate | min */
	const char *allow_group;    /* passed to the bus: a group admitted to bus.sock, or NULL */
	const char *public_url;
	/* replication (docs/replication.md): at most one of replicate and follow */
	const char *replicate;      /* NATS URLs: start the replicator as primary, or NULL */
	const char *follow;         /* NATS URLs: rejoin, then start it as standby, or NULL */
	const char *stream;         /* the stream's name */
	const char *replicas;       /* checked by main */
	const char *node;           /* this group's name, or NULL: the replicator's default */
	const char *auto_promote;   /* seconds, or NULL */
	int ready_fd;               /* -1: none */
} sup_config_t;

typedef struct supervisor supervisor_t;

typedef struct {
	const char *name;     /* "logger": output prefix, and its build-tree folder */
	int stop_phase;       /* 0 stops first */
	bool optional;        /* a missing executable is a warning */
	char *path;           /* executable, NULL when not found */
	const char *argv[SUP_ARGS_MAX + 1]; /* the exec wrapper's, then the program's */
	bool running;
	bool proc_open;       /* proc initialised and its close callback not yet run */
	pid_t pid;            /* of the running process, else of the last one */
	unsigned restarts;    /* processes started after the first */
	uint64_t started_ms;  /* uv_now() at the last start */
	uint64_t up_since_ms; /* wall clock (ms since 1970) at the last start */
	restart_t restart;
	uv_timer_t restart_timer;
	uv_process_t proc;
	output_t out, err;
	supervisor_t *sup;
} sup_child_t;

struct supervisor {
	uv_loop_t *loop;
	const sup_config_t *cfg;
	sup_child_t children[SUP_CHILDREN_MAX];
	size_t nchildren;
	uv_signal_t sig_term, sig_int;
	uv_timer_t stop_timer;   /* SIGKILL deadline of a stop phase, then drain */
	ready_t ready;
	bool live;               /* the group has been live (ready.h) */
	bool stopping;
	bool finishing;          /* every child has exited */
	sup_child_t *failed;     /* the child whose exit 100 stops the group, or NULL */
	int stop_phase;
	int exit_code;
	int outputs_open;
	int data_lock_fd, run_lock_fd; /* lock.h: held for esbankd's life */
	char self_dir[SUP_PATH_BYTES_MAX];
	char self_exe[SUP_PATH_BYTES_MAX];
	char pid_text[SUP_PID_DIGITS_MAX]; /* esbankd's pid, for the exec wrapper */
};

/* Runs the group until it stops; returns esbankd's exit code. */
int supervise_run(const sup_config_t *cfg);

#endif
