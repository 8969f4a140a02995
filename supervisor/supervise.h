/*
 * supervise.h - the children of esbankd: finding their executables,
 * starting them in order, watching them, and stopping them in order.
 *
 * Start order: logger, resolver, snapshotter, mailer, bus, http (http only
 * when enabled and its executable exists). Stop order, one phase at a time,
 * each phase waiting for its children to exit (SIGTERM, then SIGKILL after
 * SUP_STOP_TIMEOUT_MS): bus and http; resolver, snapshotter and mailer;
 * logger last, so that everything acknowledged reaches the log first.
 *
 * When a child dies on its own, sup_on_child_death() decides what happens.
 * In this first form it stops the whole group with exit code 111; a restart
 * policy (back-off, restart intensity) belongs there.
 */
#ifndef ESBANK_SUPERVISOR_SUPERVISE_H
#define ESBANK_SUPERVISOR_SUPERVISE_H

#include "output.h"
#include "ready.h"

#include <stdbool.h>
#include <uv.h>

#define SUP_CHILDREN_MAX 8
#define SUP_ARGS_MAX 16
#define SUP_STOP_PHASES 3
#define SUP_STOP_TIMEOUT_MS 5000
#define SUP_DRAIN_TIMEOUT_MS 500 /* for children's last output lines */

typedef struct {
	const char *data_dir;
	const char *run_dir;
	const char *http;           /* address, or "off" */
	const char *snapshot_every; /* checked by main */
	const char *mail;           /* maildir | mailgun | smtp://... */
	const char *pwhash_cost;    /* interactive | moderate | min */
	const char *public_url;
	int ready_fd;               /* -1: none */
} sup_config_t;

typedef struct supervisor supervisor_t;

typedef struct {
	const char *name;     /* "logger": output prefix, and its build-tree folder */
	int stop_phase;       /* 0 stops first */
	bool optional;        /* a missing executable is a warning */
	char *path;           /* executable, NULL when not found */
	const char *argv[SUP_ARGS_MAX + 1];
	bool running;
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
	bool stopping;
	bool finishing;          /* every child has exited */
	int stop_phase;
	int exit_code;
	int outputs_open;
	char self_dir[4096];
};

/* Runs the group until it stops; returns esbankd's exit code. */
int supervise_run(const sup_config_t *cfg);

#endif
