/*
 * output.h - a child's stdout or stderr, read through a pipe and copied to
 * esbankd's stderr one line at a time, each prefixed with the program's
 * name: "logger   | info: ...", after diag.h's prefix for the line's level
 * (the UTC time, or "<N>" when esbankd's stderr is the systemd journal: the
 * priority of the child's "error:", "warn:", "info:" or "debug:", else 6).
 * A line longer than OUTPUT_LINE_MAX is cut
 * into several prefixed lines; a last line without "\n" is printed at EOF.
 *
 * It also keeps the child's last error line (one starting "error: ", as
 * diag.h writes them; else its last line of any kind), cut at
 * OUTPUT_LAST_BYTES_MAX, so esbankd can repeat why a program gave up.
 */
#ifndef ESBANK_SUPERVISOR_OUTPUT_H
#define ESBANK_SUPERVISOR_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#define OUTPUT_LINE_MAX 4096
#define OUTPUT_NAME_WIDTH 8
#define OUTPUT_LAST_BYTES_MAX 512

typedef struct output output_t;
typedef void (*output_cb)(output_t *o);

/*
 * Invariants: line[0..len) is the start of a line not printed yet; last is
 * a NUL-terminated copy of a line printed since output_init (empty: none).
 */
struct output {
	uv_pipe_t pipe;
	const char *name;
	char line[OUTPUT_LINE_MAX];
	size_t len;
	char last[OUTPUT_LAST_BYTES_MAX]; /* the last error line, else the last line */
	bool last_is_error;
	bool open;         /* pipe initialised and not yet closed */
	bool in_use;       /* pipe initialised and its close callback not yet run */
	output_cb on_close; /* after the pipe is closed */
	void *data;
};

/*
 * Initialises the pipe (for uv_spawn's stdio) and remembers name. 0 or a
 * libuv error. Again after a restart only once in_use is false.
 */
int output_init(output_t *o, uv_loop_t *loop, const char *name, output_cb on_close);

/* Starts reading after a successful spawn; the pipe closes itself at EOF. */
int output_start(output_t *o);

/* Prints what is pending and closes the pipe (no-op when already closed). */
void output_close(output_t *o);

/* The last error line since output_init (else the last line, else ""). */
const char *output_last(const output_t *o);

/* True when output_last() is an error line. */
bool output_last_is_error(const output_t *o);

/* Prints one line of n bytes with name's prefix. */
void output_print(const char *name, const char *line, size_t n);

#endif
