/*
 * mailer.h - the mailer: listens on RUN/mailer.sock, takes {"t":"mail"}
 * batches from the bus, writes each mail to the durable spool
 * (DATA/mail/queue/, spool.c) before acknowledging it, then delivers it
 * through the configured transport (transport.c) with retries (queue.c).
 * docs/peers.md (Mailer) and docs/mail.md describe the whole.
 */
#ifndef ESBANK_MAILER_MAILER_H
#define ESBANK_MAILER_MAILER_H

#include "queue.h"
#include "transport.h"

#define MAILER_RETRY_MIN_MS_DEFAULT "1000"       /* first retry after 0.5..1 s */
#define MAILER_RETRY_MAX_MS_DEFAULT "600000"     /* back-off stops growing at 10 min */
#define MAILER_MAX_AGE_MS_DEFAULT "259200000"    /* 3 days, then dead */
#define MAILER_RESCAN_MS_DEFAULT "5000"          /* queue/ rescanned for re-queued mails */
#define MAILER_INFLIGHT_DEFAULT "32"             /* deliveries at once */
#define MAILER_INFLIGHT_MAX 1024
#define MAILER_DRAIN_MS 5000 /* on SIGTERM, deliveries in flight get this long */

typedef struct {
	const char *data_dir;
	const char *run_dir;
	const char *public_url;
	const char *from;
	transport_config_t transport; /* outbox is set by mailer_run() */
	queue_config_t queue;
} mailer_config_t;

/*
 * Runs the mailer until SIGTERM or SIGINT. Returns an exit code: 0 after a
 * signal, EXIT_USAGE for a bad configuration, EXIT_TEMPORARY when a file or
 * the socket cannot be set up.
 */
int mailer_run(mailer_config_t *cfg);

#endif
