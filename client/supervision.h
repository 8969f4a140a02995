/*
 * supervision.h - what esbankd says of its children in RUN/esbankd.state
 * (the format is described in supervisor/state.h), for `esbank status`.
 */
#ifndef ESBANK_CLIENT_SUPERVISION_H
#define ESBANK_CLIENT_SUPERVISION_H

#include <stdint.h>

#define SUPERVISION_CHILDREN_MAX 8

typedef struct {
	char name[16];
	int64_t pid;
	int64_t restarts;
	int64_t up_since_ms;
} supervision_child_t;

typedef struct supervision {
	int count; /* 0 when the file is absent or unreadable */
	supervision_child_t children[SUPERVISION_CHILDREN_MAX];
} supervision_t;

/* Reads the state file beside sock_path (RUN/bus.sock); never fails. */
void supervision_read(const char *sock_path, supervision_t *out);

/* The child named name, or NULL. */
const supervision_child_t *supervision_find(const supervision_t *s, const char *name);

#endif
