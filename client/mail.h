/*
 * mail.h - `esbank mail`: the mailer's spool, read straight from DATA
 * (mailer/spool.h): lists the pending and dead mails, and moves dead ones
 * back to the queue, where the mailer takes them up (it rescans the queue
 * every few seconds, and at once on SIGHUP).
 */
#ifndef ESBANK_CLIENT_MAIL_H
#define ESBANK_CLIENT_MAIL_H

#include "commands.h"

#include <stdio.h>

/* One line for the client's list of subcommands. */
void mail_list(FILE *f);

/* Runs `esbank mail ...`; argv[0] is "mail". Returns the exit code. */
int mail_main(const commands_global_t *g, int argc, char **argv);

#endif
