/*
 * state.h - RUN/esbankd.state, what esbankd knows of its children, for
 * `esbank status` and people. One JSON object, replaced atomically (written
 * to esbankd.state.tmp, then renamed) whenever a child starts or dies, when
 * the group is live and when it starts stopping; removed when esbankd ends
 * normally. Only meaningful while RUN/esbankd.lock is locked: after a SIGKILL the file stays
 * behind, and esbankd_pid is then no longer esbankd.
 *
 *     {"esbankd_pid": 4242,          esbankd's pid
 *      "state": "running",           "starting" until the group is live, then
 *                                    "running"; "stopping" once it stops
 *      "updated_ms": 1767225600123,  wall clock of this version, ms since 1970
 *      "children": [                 in start order
 *        {"name": "logger",          logger resolver snapshotter mailer bus http
 *         "pid": 4243,               of the process running, or of the last one
 *         "running": true,           false while waiting to be restarted
 *         "restarts": 0,             processes started after the first
 *         "up_since_ms": 1767225600100}, ...]}   wall clock of the last start
 *
 * Readers ignore members they do not know: more may be added.
 */
#ifndef ESBANK_SUPERVISOR_STATE_H
#define ESBANK_SUPERVISOR_STATE_H

#include "supervise.h"

#define STATE_FILE "esbankd.state"
#define STATE_BYTES_MAX 4096

/* Writes RUN/esbankd.state for s; an error is logged, not fatal. */
void state_write(const supervisor_t *s);

/* Removes RUN/esbankd.state. */
void state_remove(const supervisor_t *s);

/* The wall clock in ms since 1970. */
uint64_t state_now_ms(void);

#endif
