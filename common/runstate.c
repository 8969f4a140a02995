/* runstate.c - RUN/esbankd.state (the format is in runstate.h). */
#include "runstate.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* Appends one child's object at buf[*len]; false when it does not fit. */
static bool runstate_child(const runstate_child_t *c, bool first, char *buf, size_t *len)
{
	/* Names come from supervise.c's table: plain ASCII, nothing to escape. */
	int n = snprintf(buf + *len, RUNSTATE_BYTES_MAX - *len,
	                 "%s\n  {\"name\": \"%s\", \"pid\": %" PRId64 ", \"running\": %s, "
	                 "\"restarts\": %" PRId64 ", \"up_since_ms\": %" PRId64 "}",
	                 first ? "" : ",", c->name, c->pid, c->running ? "true" : "false",
	                 c->restarts, c->up_since_ms);
	if (n < 0 || (size_t)n >= RUNSTATE_BYTES_MAX - *len)
		return false;
	*len += (size_t)n;
	return true;
}

int runstate_format(const runstate_t *rs, char buf[RUNSTATE_BYTES_MAX], size_t *len)
{
	assert(rs->count >= 0 && rs->count <= RUNSTATE_CHILDREN_MAX);
	int n = snprintf(buf, RUNSTATE_BYTES_MAX,
	                 "{\"esbankd_pid\": %" PRId64 ", \"state\": \"%s\", \"updated_ms\": %" PRId64
	                 ", \"children\": [",
	                 rs->esbankd_pid, rs->state, rs->updated_ms);
	*len = (size_t)n;
	bool fits = n > 0 && *len < RUNSTATE_BYTES_MAX;
	for (int i = 0; fits && i < rs->count; i++)
		fits = runstate_child(&rs->children[i], i == 0, buf, len);
	n = fits ? snprintf(buf + *len, RUNSTATE_BYTES_MAX - *len, "\n]}\n") : -1;
	if (n < 0 || (size_t)n >= RUNSTATE_BYTES_MAX - *len)
		return -ENOBUFS;
	*len += (size_t)n;
	return 0;
}

static void runstate_read_child(json_t *c, runstate_child_t *out)
{
	const char *name = json_string_value(json_object_get(c, "name"));
	snprintf(out->name, sizeof(out->name), "%s", name ? name : "?");
	out->pid = json_integer_value(json_object_get(c, "pid"));
	out->running = json_is_true(json_object_get(c, "running"));
	out->restarts = json_integer_value(json_object_get(c, "restarts"));
	out->up_since_ms = json_integer_value(json_object_get(c, "up_since_ms"));
}

void runstate_read(const char *path, runstate_t *out)
{
	memset(out, 0, sizeof(*out));
	json_t *root = json_load_file(path, 0, NULL);
	const char *state = json_string_value(json_object_get(root, "state"));
	snprintf(out->state, sizeof(out->state), "%s", state ? state : "");
	out->esbankd_pid = json_integer_value(json_object_get(root, "esbankd_pid"));
	out->updated_ms = json_integer_value(json_object_get(root, "updated_ms"));
	json_t *children = json_object_get(root, "children");
	size_t i;
	json_t *c;
	json_array_foreach(children, i, c) {
		if (out->count == RUNSTATE_CHILDREN_MAX)
			break;
		runstate_read_child(c, &out->children[out->count++]);
	}
	json_decref(root);
}

const runstate_child_t *runstate_find(const runstate_t *rs, const char *name)
{
	for (int i = 0; i < rs->count; i++)
		if (strcmp(rs->children[i].name, name) == 0)
			return &rs->children[i];
	return NULL;
}
