/*
 * state.h - esbankd's side of RUN/esbankd.state: what it knows of its
 * children, written for `esbank status` and people. The format, and its
 * reader, are in common/runstate.h.
 */
#ifndef ESBANK_SUPERVISOR_STATE_H
#define ESBANK_SUPERVISOR_STATE_H

#include "runstate.h"
#include "supervise.h"

/* Writes RUN/esbankd.state for s; an error is logged, not fatal. */
void state_write(const supervisor_t *s);

/* Removes RUN/esbankd.state. */
void state_remove(const supervisor_t *s);

/* The wall clock in ms since 1970. */
uint64_t state_now_ms(void);

#endif
