/*
 * fuzz_http.c - the HTTP request handling of the gateway: the real server
 * (http/server.c: http_parser, limits, keep-alive, pipelining), the routes
 * (http/routes.c: JSON bodies, query strings, tokens, rate limits) and the
 * gateway's calls to the bus (http/buscall.c over libesbank, its link
 * attached to a socketpair, again after the gateway dropped it), all from http's library, in one process on one libuv loop.
 *
 * For each input: a TCP connection to the server on 127.0.0.1 sends the
 * HTTP bytes and shuts down its sending side; a fake bus on a socketpair
 * answers every request the gateway sends. Input layout: HTTP bytes, then
 * optionally "\0REPLY\0" and a msgpack body used for every bus reply (a map
 * is sent with the request's "id" put in; anything else is sent as it is,
 * as a broken bus would, followed by an "internal" error reply). Without it each reply is {"id":n,"ok":true}.
 * Every "@TOKEN@" in the HTTP bytes is replaced by a valid bearer token for
 * account 4417123456789012 (the secret is made per run, so the corpus
 * cannot hold one), which lets the fuzzer past route_auth.
 * Checks: no sanitizer report; every connection is closed and freed once
 * the client is gone (nconns back to 0); no bus request stays in flight.
 */
#include "gateway.h"

#include "frame.h"
#include "fuzz.h"
#include "diag.h"
#include "msg.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FUZZ_HTTP_SPINS_MAX 2000
#define FUZZ_HTTP_CLOSE_MS_MAX 3000

static gateway_t *fz_gw;
static int fz_bus_fd = -1;
static int fz_port;
static char fz_busbuf[1 << 20];
static size_t fz_buslen;

/* A free TCP port on 127.0.0.1 (the server takes no port 0). */
static int fz_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	assert(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	assert(getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
	close(fd);
	return ntohs(sa.sin_port);
}

static void fz_init(void)
{
	if (fz_gw)
		return;
	if (!getenv("ESBANK_LOG"))
		diag_set_level(DIAG_ERROR + 1);
	fz_gw = calloc(1, sizeof(*fz_gw));
	assert(fz_gw);
	fz_gw->loop = uv_default_loop();
	static char addr[32];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", fz_free_port());
	gateway_opts_t o = { .http_addr = addr, .data_dir = fuzz_tmpdir(),
		             .run_dir = fuzz_tmpdir(), .token_ttl_s = 3600 };
	assert(gateway_init(fz_gw, &o) == 0);
	assert(gateway_listen(fz_gw, &o) == 0);
	struct sockaddr_in sa;
	int len = sizeof(sa);
	assert(uv_tcp_getsockname(&fz_gw->server.tcp, (struct sockaddr *)&sa, &len) == 0);
	fz_port = ntohs(sa.sin_port);
}

/* A fresh fake bus when there is none, or the gateway dropped the last one
 * (a broken reply breaks the protocol: libesbank drops the link). */
static void fz_attach_bus(void)
{
	if (buscall_up(&fz_gw->calls))
		return;
	if (fz_bus_fd >= 0)
		close(fz_bus_fd);
	int sv[2];
	assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	assert(buscall_attach(&fz_gw->calls, sv[0]) == 0);
	fz_bus_fd = sv[1];
	fz_buslen = 0;
	fcntl(fz_bus_fd, F_SETFL, O_NONBLOCK);
}

static void fz_write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0) {
			uv_run(fz_gw->loop, UV_RUN_NOWAIT);
			continue;
		}
		c += w, n -= (size_t)w;
	}
}

/* Answers one request frame of the gateway. */
static void fz_answer(const char *body, size_t len, const uint8_t *reply, size_t reply_n,
                      bool has_reply)
{
	msgpack_zone zone;
	msgpack_zone_init(&zone, 1024);
	msgpack_object req, rmap;
	uint64_t id = 0;
	assert(msg_decode_map(body, len, &zone, &req) == 0); /* the gateway sends maps */
	assert(msg_get_u64(&req, "id", &id) == 0 && id != 0);
	msg_buf_t b;
	msg_buf_init(&b);
	size_t off = msg_frame_begin(&b);
	if (!has_reply) {
		msgpack_pack_map(&b.pk, 2);
		msg_pack_kv_u64(&b.pk, "id", id);
		msg_pack_kv_bool(&b.pk, "ok", true);
	} else if (msg_decode_map((const char *)reply, reply_n, &zone, &rmap) == 0) {
		msgpack_pack_map(&b.pk, 1 + rmap.via.map.size);
		msg_pack_kv_u64(&b.pk, "id", id);
		for (uint32_t i = 0; i < rmap.via.map.size; i++) {
			msgpack_pack_object(&b.pk, rmap.via.map.ptr[i].key);
			msgpack_pack_object(&b.pk, rmap.via.map.ptr[i].val);
		}
	} else {
		/* a broken reply (the gateway drops the link: its requests fail
		 * 503), then a real one, as a bus that keeps going would send */
		if (reply_n > 0 && reply_n <= FRAME_BODY_MAX) {
			msg_buf_append(&b, reply, reply_n);
			msg_frame_end(&b, off);
			off = msg_frame_begin(&b);
		}
		msgpack_pack_map(&b.pk, 3);
		msg_pack_kv_u64(&b.pk, "id", id);
		msg_pack_kv_bool(&b.pk, "ok", false);
		msg_pack_kv_str(&b.pk, "error", "internal");
	}
	if (b.sb.size > off + FRAME_HEADER_BYTES) {
		msg_frame_end(&b, off);
		fz_write_all(fz_bus_fd, b.sb.data, b.sb.size);
	}
	msg_buf_free(&b);
	msgpack_zone_destroy(&zone);
}

/* Reads what the gateway sent to the bus and answers each whole frame. */
static void fz_bus(const uint8_t *reply, size_t reply_n, bool has_reply)
{
	for (;;) {
		ssize_t r = read(fz_bus_fd, fz_busbuf + fz_buslen, sizeof(fz_busbuf) - fz_buslen);
		if (r <= 0)
			break;
		fz_buslen += (size_t)r;
	}
	size_t off = 0;
	while (fz_buslen - off >= FRAME_HEADER_BYTES) {
		uint32_t n = frame_get_header(fz_busbuf + off);
		assert(n >= 1 && n <= FRAME_BODY_MAX);
		if (fz_buslen - off < FRAME_HEADER_BYTES + n)
			break;
		fz_answer(fz_busbuf + off + FRAME_HEADER_BYTES, n, reply, reply_n, has_reply);
		off += FRAME_HEADER_BYTES + n;
	}
	memmove(fz_busbuf, fz_busbuf + off, fz_buslen - off);
	fz_buslen -= off;
}

/* Reads and drops the responses; true once the server has closed. */
static bool fz_drain(int fd)
{
	char buf[65536];
	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r == 0)
			return true;
		if (r < 0)
			return errno != EAGAIN && errno != EWOULDBLOCK;
	}
}

static int fz_connect(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert(fd >= 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)fz_port),
		                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	/* no TIME_WAIT on our side (a reset at close): hundreds of thousands of
	 * connections would otherwise use up the ephemeral ports */
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	/* non-blocking, so that libFuzzer's timer signals (EINTR) do not
	 * break the connect; then wait until it completes */
	fcntl(fd, F_SETFL, O_NONBLOCK);
	int rc, tries = 0;
	while ((rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa))) < 0 &&
	       (errno == EADDRNOTAVAIL || errno == EAGAIN) && tries++ < 100)
		usleep(10000);
	if (rc < 0 && errno == EINPROGRESS) {
		/* the server accepts in uv_run, but the kernel completes the
		 * handshake into the backlog by itself */
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		int err = 0;
		socklen_t len = sizeof(err);
		while (poll(&p, 1, 5000) < 0 && errno == EINTR)
			;
		rc = getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0 ? 0 : -1;
	}
	if (rc < 0) {
		perror("fuzz_http: connect");
		abort();
	}
	return fd;
}

/* Copies in[0..n) to a new buffer with every "@TOKEN@" replaced. */
static uint8_t *fz_tokens(const uint8_t *in, size_t n, size_t *out_n)
{
	static const char mark[] = "@TOKEN@";
	char tok[TOKEN_TEXT_MAX];
	assert(token_make(&fz_gw->token, "4417123456789012", (uint64_t)time(NULL), tok,
	                  sizeof(tok)) == 0);
	size_t tn = strlen(tok), mn = sizeof(mark) - 1;
	uint8_t *out = malloc(n * (tn > mn ? tn : mn) / mn + tn + 1);
	assert(out);
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		if (n - i >= mn && memcmp(in + i, mark, mn) == 0) {
			memcpy(out + o, tok, tn);
			o += tn, i += mn;
		} else {
			out[o++] = in[i++];
		}
	}
	*out_n = o;
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > FUZZ_INPUT_BYTES_MAX)
		return 0;
	fz_init();
	fz_attach_bus();
	static const char sep[] = "\0REPLY\0";
	const uint8_t *cut = size ? memmem(data, size, sep, sizeof(sep) - 1) : NULL;
	size_t http_n = cut ? (size_t)(cut - data) : size;
	const uint8_t *reply = cut ? cut + sizeof(sep) - 1 : NULL;
	size_t reply_n = cut ? size - http_n - (sizeof(sep) - 1) : 0;

	uint8_t *http = fz_tokens(data, http_n, &http_n);
	int fd = fz_connect();
	size_t sent = 0;
	bool closed = false;
	while (sent < http_n && !closed) {
		ssize_t w = write(fd, http + sent, http_n - sent);
		if (w > 0)
			sent += (size_t)w;
		else if (errno != EAGAIN)
			break; /* the server closed on us: fine */
		uv_run(fz_gw->loop, UV_RUN_NOWAIT);
		fz_bus(reply, reply_n, cut != NULL);
		closed = fz_drain(fd);
	}
	shutdown(fd, SHUT_WR);
	for (int i = 0; i < FUZZ_HTTP_SPINS_MAX && !closed; i++) {
		uv_run(fz_gw->loop, UV_RUN_NOWAIT);
		fz_bus(reply, reply_n, cut != NULL);
		closed = fz_drain(fd);
	}
	close(fd);
	free(http);
	/* the client is gone: every connection must be closed and freed */
	uint64_t deadline = uv_hrtime() + (uint64_t)FUZZ_HTTP_CLOSE_MS_MAX * 1000000;
	while (fz_gw->server.nconns > 0 && uv_hrtime() < deadline) {
		uv_run(fz_gw->loop, UV_RUN_NOWAIT);
		fz_bus(reply, reply_n, cut != NULL);
	}
	if (fz_gw->server.nconns != 0) {
		fprintf(stderr, "fuzz_http: %zu connection(s) left open\n", fz_gw->server.nconns);
		abort();
	}
	if (buscall_inflight(&fz_gw->calls) != 0) {
		fprintf(stderr, "fuzz_http: %zu bus request(s) left in flight\n",
		        buscall_inflight(&fz_gw->calls));
		abort();
	}
	return 0;
}
