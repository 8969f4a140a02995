/* supervision.c - reading RUN/esbankd.state (see supervision.h). */
#include "supervision.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define SUPERVISION_PATH_MAX 4096

static void supervision_child(json_t *c, supervision_child_t *out)
{
	const char *name = json_string_value(json_object_get(c, "name"));
	snprintf(out->name, sizeof(out->name), "%s", name ? name : "?");
	out->pid = json_integer_value(json_object_get(c, "pid"));
	out->restarts = json_integer_value(json_object_get(c, "restarts"));
	out->up_since_ms = json_integer_value(json_object_get(c, "up_since_ms"));
}

void supervision_read(const char *sock_path, supervision_t *out)
{
	char path[SUPERVISION_PATH_MAX];
	const char *slash = strrchr(sock_path, '/');
	int dir_len = slash ? (int)(slash - sock_path) : 1;
	snprintf(path, sizeof(path), "%.*s/esbankd.state", dir_len, slash ? sock_path : ".");
	memset(out, 0, sizeof(*out));
	json_t *root = json_load_file(path, 0, NULL);
	json_t *children = json_object_get(root, "children");
	size_t i;
	json_t *c;
	json_array_foreach(children, i, c) {
		if (out->count == SUPERVISION_CHILDREN_MAX)
			break;
		supervision_child(c, &out->children[out->count++]);
	}
	json_decref(root);
}

const supervision_child_t *supervision_find(const supervision_t *s, const char *name)
{
	for (int i = 0; i < s->count; i++)
		if (strcmp(s->children[i].name, name) == 0)
			return &s->children[i];
	return NULL;
}
