/*
 * password.h - reading a password for open and login-check: from the
 * terminal without echo, or one line from stdin (--password-stdin).
 */
#ifndef ESBANK_CLIENT_PASSWORD_H
#define ESBANK_CLIENT_PASSWORD_H

#include "ledger.h"

#include <stdbool.h>
#include <stddef.h>

#define PASSWORD_BYTES_MAX LEDGER_PASSWORD_BYTES_MAX

/*
 * Reads a password into buf (NUL-terminated, without the line end) and sets
 * *len. With from_stdin, reads one line from standard input; otherwise asks
 * on /dev/tty with echo off, twice when confirm. A signal while echo is off
 * restores the terminal and then takes its default action. Returns 0, or a
 * negative errno after printing why on stderr. The caller wipes buf.
 */
int password_read(bool from_stdin, bool confirm, char buf[PASSWORD_BYTES_MAX + 1], size_t *len);

#endif
