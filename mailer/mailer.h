/*
 * mailer.h - the mailer's peer side: listens on RUN/mailer.sock, takes
 * {"t":"mail"} batches from the bus, writes one message per event into the
 * Maildir outbox, and acknowledges them (docs/peers.md, Mailer).
 */
#ifndef ESBANK_MAILER_MAILER_H
#define ESBANK_MAILER_MAILER_H

typedef struct {
	const char *data_dir;
	const char *run_dir;
	const char *public_url;
	const char *from;
} mailer_config_t;

/*
 * Runs the mailer until SIGTERM or SIGINT. Returns an exit code: 0 after a
 * signal, EXIT_USAGE for a bad configuration, EXIT_TEMPORARY when a file or
 * the socket cannot be set up.
 */
int mailer_run(const mailer_config_t *cfg);

#endif
