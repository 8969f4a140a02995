/*
 * setup.h - the accounts `esbank bench` prepares before the load: opened
 * over the protocol, their verification codes read from the mails the
 * mailer writes to the Maildir outbox, then verified.
 *
 * Steps: open (cfg->accounts open_account requests, pipelined), mail (the
 * codes, polled from DATA/mail/outbox), verify (verify_account for each,
 * pipelined); then the load starts (drive_load_start) or, with
 * --setup-only, the run stops.
 */
#ifndef ESBANK_CLIENT_BENCH_SETUP_H
#define ESBANK_CLIENT_BENCH_SETUP_H

#include "drive.h"
#include "mix.h"
#include "options.h"

#include <msgpack.h>
#include <stdint.h>
#include <uv.h>

typedef enum {
	SETUP_IDLE,
	SETUP_OPEN,
	SETUP_MAIL,
	SETUP_VERIFY,
	SETUP_OVER, /* verified, or the run stopped */
} setup_step_t;

typedef struct {
	uint64_t seq; /* of its account_opened event: names its mail */
	char *code;   /* from the mail, until verified */
} setup_account_t;

typedef struct {
	uint64_t seq;
	uint32_t index;
} setup_by_seq_t;

/* Written only by setup.c; the files above may read it. */
typedef struct {
	const bench_config_t *cfg;
	drive_t *drive;
	setup_step_t step;
	bench_number_t *numbers; /* cfg->accounts of them, once opened */
	setup_account_t *acct;   /* cfg->accounts of them */
	setup_by_seq_t *by_seq;  /* from the mail step: acct sorted by seq */
	uint64_t next, done;     /* requests sent, replies (or codes) got in this step */
	uint64_t start_ns, setup_ns;
	uv_timer_t mail;
	uint64_t mail_found_ns, mail_seen;
	char tag[17]; /* random per run, in the emails, so runs never collide */
} setup_t;

/* Allocates the accounts of a zeroed *s; 0 or -ENOMEM (setup_free cleans up). */
int setup_init(setup_t *s, const bench_config_t *cfg, drive_t *d);

/* Sets up the mail poll's timer on loop (closed by setup_stop). */
void setup_handles(setup_t *s, uv_loop_t *loop);

/* Starts opening the accounts; fails the drive when DATA has no Maildir. */
void setup_start(setup_t *s);

/* Sends the step's next requests on dc while it has room (drive_cbs_t.fill_cb). */
void setup_fill(setup_t *s, drive_conn_t *dc);

/* A reply to the setup request op for account i (drive_cbs_t.reply_cb). */
void setup_reply(setup_t *s, bench_op_t op, uint32_t i, const msgpack_object *reply,
		 size_t outcome);

/* The run stops: ends the step and closes the timer. */
void setup_stop(setup_t *s);

/* Frees what setup_init() and the steps allocated. */
void setup_free(setup_t *s);

#endif
