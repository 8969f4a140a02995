/*
 * runstate.h - RUN/esbankd.state, what esbankd knows of its children, for
 * `esbank status` and people: written by esbankd (supervisor/state.c), read
 * by the client. One JSON object, replaced atomically (written to
 * esbankd.state.tmp, then renamed) whenever a child starts or dies, when the
 * group is live and when it starts stopping; removed when esbankd ends
 * normally. Only meaningful while RUN/esbankd.lock is locked: after a SIGKILL
 * the file stays behind, and esbankd_pid is then no longer esbankd.
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
 * Readers ignore members they do not know: more may be added. A reader that
 * finds no file, or one that does not parse, sees no children.
 */
#ifndef ESBANK_COMMON_RUNSTATE_H
#define ESBANK_COMMON_RUNSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RUNSTATE_FILE "esbankd.state"
#define RUNSTATE_BYTES_MAX 4096
#define RUNSTATE_CHILDREN_MAX 8  /* more in a file are not read */
#define RUNSTATE_NAME_MAX 15     /* a child's name; longer ones are cut when read */
#define RUNSTATE_STATE_MAX 15

typedef struct {
	char name[RUNSTATE_NAME_MAX + 1]; /* plain ASCII: written without escaping */
	int64_t pid;
	bool running;
	int64_t restarts;
	int64_t up_since_ms;
} runstate_child_t;

typedef struct runstate {
	int64_t esbankd_pid;
	char state[RUNSTATE_STATE_MAX + 1]; /* "starting", "running", "stopping" */
	int64_t updated_ms;
	int count; /* children; 0 when the file is absent or unreadable */
	runstate_child_t children[RUNSTATE_CHILDREN_MAX];
} runstate_t;

/*
 * Writes rs as the file's text into buf[0..*len). Returns 0, or -ENOBUFS
 * when it does not fit in RUNSTATE_BYTES_MAX bytes.
 */
int runstate_format(const runstate_t *rs, char buf[RUNSTATE_BYTES_MAX], size_t *len);

/* Reads the file at path into out; never fails (count 0 when unreadable). */
void runstate_read(const char *path, runstate_t *out);

/* The child named name, or NULL. */
const runstate_child_t *runstate_find(const runstate_t *rs, const char *name);

#endif
