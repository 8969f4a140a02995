/*
 * wire.c - the blocking link to bus.sock (see wire.h; the frame is
 * described in common/frame.h, the messages in docs/protocol.md).
 *
 * Ids start at 1 and grow by one per request, so the id 0 the server uses
 * for a reply to an unreadable request or a framing error never names a
 * request of ours: such a reply answers whichever request is waiting.
 */
#include "wire.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define WIRE_READ_BYTES 65536
#define WIRE_SOCK_NAME "bus.sock"

int wire_sock_path(const char *where, char *path)
{
	struct stat st;
	int n;

	if (stat(where, &st) == 0 && S_ISDIR(st.st_mode))
		n = snprintf(path, WIRE_PATH_BYTES_MAX, "%s/%s", where, WIRE_SOCK_NAME);
	else
		n = snprintf(path, WIRE_PATH_BYTES_MAX, "%s", where);
	return n < 0 || n >= WIRE_PATH_BYTES_MAX ? -ENAMETOOLONG : 0;
}

/* One line for each way connecting fails, naming the place. */
static void wire_explain(int err, const char *path, char *why, size_t why_size)
{
	size_t n = strlen(path), tail = strlen("/" WIRE_SOCK_NAME);
	int dir_len = n > tail && strcmp(path + n - tail, "/" WIRE_SOCK_NAME) == 0
			      ? (int)(n - tail) : (int)n;

	if (!why || why_size == 0)
		return;
	switch (err) {
	case -ENOENT:
		snprintf(why, why_size, "no esbank group at %.*s: bus.sock not found "
			 "(is esbankd running? see --run or ESBANK_RUN)", dir_len, path);
		break;
	case -EACCES:
		snprintf(why, why_size, "cannot reach %s: permission denied (the run "
			 "directory and bus.sock admit only the user that runs esbankd, "
			 "and the members of its --allow-group)", path);
		break;
	case -ECONNREFUSED:
		snprintf(why, why_size, "no esbank group at %.*s: nobody listens on "
			 "bus.sock (esbankd stopped without removing it?)", dir_len, path);
		break;
	case -EPERM:
		snprintf(why, why_size, "the bus at %s closed the connection without a "
			 "reply: user %u is not admitted (SO_PEERCRED: only the user that "
			 "runs esbankd, and the members of its --allow-group)",
			 path, (unsigned)geteuid());
		break;
	case -ETIMEDOUT:
		snprintf(why, why_size, "the bus at %s did not answer a ping in %d ms",
			 path, WIRE_HELLO_TIMEOUT_MS);
		break;
	case -ENAMETOOLONG:
		snprintf(why, why_size, "%s: path too long for a socket", path);
		break;
	default:
		snprintf(why, why_size, "cannot connect to %s: %s", path, strerror(-err));
		break;
	}
}

static int wire_connect(wire_t *w, const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };

	if (strlen(path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	strcpy(addr.sun_path, path);
	w->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (w->fd < 0)
		return -errno;
	if (connect(w->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return errno == EPERM ? -EACCES : -errno;
	return 0;
}

/* A ping the bus answers at once in any state; a foreign user gets EOF. */
static int wire_ping(wire_t *w)
{
	msgpack_object reply;
	uint64_t id;

	wire_request(w, "ping", 0, &id);
	int rc = wire_send(w);
	if (rc == 0)
		rc = wire_wait(w, id, WIRE_HELLO_TIMEOUT_MS, &reply);
	if (rc == -ECONNRESET || rc == -EPIPE)
		return -EPERM;
	return rc;
}

int wire_open(wire_t *w, const char *where, int check, char *why, size_t why_size)
{
	char path[WIRE_PATH_BYTES_MAX];

	memset(w, 0, sizeof(*w));
	w->fd = -1;
	w->next_id = 1;
	frame_reader_init(&w->reader);
	msg_buf_init(&w->out);
	if (!msgpack_zone_init(&w->zone, WIRE_ZONE_CHUNK_BYTES))
		return -ENOMEM;
	int rc = wire_sock_path(where, path);
	if (rc == 0)
		rc = wire_connect(w, path);
	if (rc == 0 && check)
		rc = wire_ping(w);
	if (rc < 0)
		wire_explain(rc, rc == -ENAMETOOLONG ? where : path, why, why_size);
	return rc;
}

void wire_close(wire_t *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	frame_reader_free(&w->reader);
	if (w->out.sb.data)
		explicit_bzero(w->out.sb.data, w->out.sb.alloc);
	msg_buf_free(&w->out);
	msgpack_zone_destroy(&w->zone);
}

msgpack_packer *wire_request(wire_t *w, const char *op, uint32_t nfields, uint64_t *id)
{
	*id = w->next_id++;
	msg_buf_reset(&w->out);
	w->frame_off = msg_frame_begin(&w->out);
	msgpack_pack_map(&w->out.pk, 2 + nfields);
	msg_pack_kv_str(&w->out.pk, "op", op);
	msg_pack_kv_u64(&w->out.pk, "id", *id);
	return &w->out.pk;
}

int wire_send(wire_t *w)
{
	size_t done = 0;
	int rc = 0;

	msg_frame_end(&w->out, w->frame_off);
	if (w->out.sb.size - w->frame_off - FRAME_HEADER_BYTES > FRAME_BODY_MAX)
		rc = -EMSGSIZE;
	while (rc == 0 && done < w->out.sb.size) {
		ssize_t n = send(w->fd, w->out.sb.data + done, w->out.sb.size - done,
				 MSG_NOSIGNAL);
		if (n < 0 && errno != EINTR)
			rc = -errno;
		else if (n > 0)
			done += (size_t)n;
	}
	/* The request may hold a password: leave no copy of it behind. */
	explicit_bzero(w->out.sb.data, w->out.sb.size);
	msg_buf_reset(&w->out);
	return rc;
}

static int64_t wire_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads what the socket has into the frame reader, waiting until deadline. */
static int wire_fill(wire_t *w, int64_t deadline_ms)
{
	struct pollfd pfd = { .fd = w->fd, .events = POLLIN };
	int wait_ms = -1;
	size_t room;

	if (deadline_ms >= 0) {
		int64_t left = deadline_ms - wire_now_ms();
		wait_ms = left > 0 ? (int)left : 0;
	}
	int ready = poll(&pfd, 1, wait_ms);
	if (ready < 0)
		return -errno;
	if (ready == 0)
		return -ETIMEDOUT;
	char *space = frame_reader_space(&w->reader, WIRE_READ_BYTES, &room);
	if (!space)
		return -ENOMEM;
	ssize_t n = read(w->fd, space, room);
	if (n < 0)
		return errno == EAGAIN ? 0 : errno == ECONNRESET ? -ECONNRESET : -errno;
	if (n == 0)
		return -ECONNRESET;
	frame_reader_commit(&w->reader, (size_t)n);
	return 0;
}

/* Decodes one frame body; 1 when it is the reply to id, 0 when it is not. */
static int wire_match(wire_t *w, const char *body, size_t len, uint64_t id,
		      msgpack_object *reply)
{
	uint64_t got;

	msgpack_zone_clear(&w->zone);
	if (msg_decode_map(body, len, &w->zone, reply) < 0)
		return -EBADMSG;
	if (msg_get_u64(reply, "id", &got) < 0)
		return -EBADMSG;
	w->body = body;
	w->body_len = len;
	return got == id || got == 0;
}

int wire_wait(wire_t *w, uint64_t id, int timeout_ms, msgpack_object *reply)
{
	int64_t deadline_ms = timeout_ms < 0 ? -1 : wire_now_ms() + timeout_ms;
	unsigned strays = 0;

	for (;;) {
		const char *body;
		size_t len;
		int rc = frame_reader_next(&w->reader, &body, &len);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			rc = wire_fill(w, deadline_ms);
			if (rc < 0)
				return rc;
			continue;
		}
		rc = wire_match(w, body, len, id, reply);
		if (rc != 0)
			return rc < 0 ? rc : 0;
		if (++strays > WIRE_STRAY_REPLIES_MAX)
			return -EPROTO;
	}
}
