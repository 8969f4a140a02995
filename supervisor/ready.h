/*
 * ready.h - waits until the group is live: every READY_POLL_MS, connects to
 * RUN/bus.sock, sends {"op":"status","id":1} and reads the reply; calls
 * on_ready once a reply has "state":"live" and every peer of its "peers" map
 * "connected":true, and the caller's check (the programs the bus does not
 * see, such as http) says yes too. An attempt that gets no reply within
 * READY_ATTEMPT_MS is dropped and tried again. on_ready is called at most
 * once: nothing says "live" before that.
 */
#ifndef ESBANK_SUPERVISOR_READY_H
#define ESBANK_SUPERVISOR_READY_H

#include "frame.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define READY_POLL_MS 50
#define READY_ATTEMPT_MS 1000
#define READY_WARN_MS 10000 /* logs "still waiting" this often */

typedef struct ready ready_t;
typedef void (*ready_cb)(ready_t *r);
typedef bool (*ready_check_cb)(ready_t *r);

struct ready {
	uv_loop_t *loop;
	uv_timer_t timer;
	uv_pipe_t pipe;
	uv_connect_t creq;
	uv_write_t wreq;
	frame_reader_t rd;
	char *path;
	bool busy;    /* an attempt holds pipe */
	bool done;    /* live seen, or stopped */
	bool started;
	uint64_t start_ms, attempt_ms, warned_ms;
	ready_check_cb check; /* NULL, or true once the rest of the group is up */
	ready_cb on_ready;
	void *data;
};

/*
 * Starts polling the bus socket at path (copied); check may be NULL. 0 or a
 * negative errno.
 */
int ready_start(ready_t *r, uv_loop_t *loop, const char *path, ready_check_cb check,
                ready_cb on_ready);

/* Stops polling and closes its handles (safe to call twice, or unstarted). */
void ready_stop(ready_t *r);

#endif
