/*
 * rpc.c - blocking request/reply over bus.sock (see rpc.h; the frame format
 * is in common/frame.h, the message rules in PROTOCOL.md).
 *
 * Ids start at 1 and grow by one per request, so the id 0 the server uses
 * for a reply to an unreadable request or a framing error never names a
 * request of ours: such a reply answers whichever request is waiting.
 */
#include "rpc.h"

#include <errno.h>
#include <poll.h>
#include <sodium.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define RPC_READ_BYTES 65536

int rpc_open(rpc_t *r, const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };

	memset(r, 0, sizeof(*r));
	r->fd = -1;
	r->next_id = 1;
	frame_reader_init(&r->reader);
	msg_buf_init(&r->out);
	if (!msgpack_zone_init(&r->zone, RPC_ZONE_CHUNK_BYTES))
		return -ENOMEM;
	if (strlen(path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	strcpy(addr.sun_path, path);
	r->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (r->fd < 0)
		return -errno;
	if (connect(r->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return -errno;
	return 0;
}

void rpc_close(rpc_t *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	frame_reader_free(&r->reader);
	if (r->out.sb.data)
		sodium_memzero(r->out.sb.data, r->out.sb.size);
	msg_buf_free(&r->out);
	msgpack_zone_destroy(&r->zone);
}

msgpack_packer *rpc_request(rpc_t *r, const char *op, uint32_t nfields, uint64_t *id)
{
	*id = r->next_id++;
	msg_buf_reset(&r->out);
	r->frame_off = msg_frame_begin(&r->out);
	msgpack_pack_map(&r->out.pk, 2 + nfields);
	msg_pack_kv_str(&r->out.pk, "op", op);
	msg_pack_kv_u64(&r->out.pk, "id", *id);
	return &r->out.pk;
}

int rpc_send(rpc_t *r)
{
	size_t done = 0;

	msg_frame_end(&r->out, r->frame_off);
	if (r->out.sb.size - r->frame_off - FRAME_HEADER_BYTES > FRAME_BODY_MAX)
		return -EMSGSIZE;
	while (done < r->out.sb.size) {
		ssize_t n = send(r->fd, r->out.sb.data + done, r->out.sb.size - done,
				 MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		done += (size_t)n;
	}
	/* The request may hold a password: leave no copy of it behind. */
	sodium_memzero(r->out.sb.data, r->out.sb.size);
	msg_buf_reset(&r->out);
	return 0;
}

static int64_t rpc_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads what the socket has into the frame reader, waiting until deadline. */
static int rpc_fill(rpc_t *r, int64_t deadline_ms)
{
	struct pollfd pfd = { .fd = r->fd, .events = POLLIN };
	int wait_ms = -1;
	size_t room;

	if (deadline_ms >= 0) {
		int64_t left = deadline_ms - rpc_now_ms();
		wait_ms = left > 0 ? (int)left : 0;
	}
	int ready = poll(&pfd, 1, wait_ms);
	if (ready < 0)
		return -errno;
	if (ready == 0)
		return -ETIMEDOUT;
	char *space = frame_reader_space(&r->reader, RPC_READ_BYTES, &room);
	if (!space)
		return -ENOMEM;
	ssize_t n = read(r->fd, space, room);
	if (n < 0)
		return errno == EAGAIN ? 0 : -errno;
	if (n == 0)
		return -ECONNRESET;
	frame_reader_commit(&r->reader, (size_t)n);
	return 0;
}

/* Decodes one frame body; 1 when it is the reply to id, 0 when it is not. */
static int rpc_match(rpc_t *r, const char *body, size_t len, uint64_t id,
		     msgpack_object *reply)
{
	uint64_t got;

	msgpack_zone_clear(&r->zone);
	if (msg_decode_map(body, len, &r->zone, reply) < 0)
		return -EBADMSG;
	if (msg_get_u64(reply, "id", &got) < 0)
		return -EBADMSG;
	return got == id || got == 0;
}

int rpc_wait(rpc_t *r, uint64_t id, int timeout_ms, msgpack_object *reply)
{
	int64_t deadline_ms = timeout_ms < 0 ? -1 : rpc_now_ms() + timeout_ms;
	unsigned strays = 0;

	for (;;) {
		const char *body;
		size_t len;
		int rc = frame_reader_next(&r->reader, &body, &len);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			rc = rpc_fill(r, deadline_ms);
			if (rc < 0)
				return rc;
			continue;
		}
		rc = rpc_match(r, body, len, id, reply);
		if (rc != 0)
			return rc < 0 ? rc : 0;
		if (++strays > RPC_STRAY_REPLIES_MAX)
			return -EPROTO;
	}
}
