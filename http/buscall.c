/*
 * buscall.c - the gateway's calls in flight to the bus (see buscall.h).
 *
 * The wire format (docs/protocol.md: frames of {"op", "id", ...fields},
 * replies {"id", "ok", ...}) is coded once, in libesbank (libesbank/):
 * this file only keeps one async link connected and bounds what it holds.
 * Connecting is a non-blocking connect() on the Unix socket, which succeeds
 * or fails at once; a failure or a loss waits BUSCALL_BACKOFF_MIN_MS,
 * doubling up to BUSCALL_BACKOFF_MAX_MS, and a link that comes up resets it.
 */
#include "buscall.h"

#include "diag.h"

#include <assert.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void buscall_retry_later(buscall_table_t *t);

static void buscall_lost_cb(esbank_async_t *a, int status, void *arg)
{
	buscall_table_t *t = arg;
	assert(a == t->link);
	diag_warn("lost the bus (%s); the requests in flight failed", strerror(-status));
	esbank_async_close(a);
	t->link = NULL;
	buscall_retry_later(t);
}

static void buscall_up_with(buscall_table_t *t, esbank_async_t *a)
{
	t->link = a;
	t->generation++;
	t->backoff_ms = BUSCALL_BACKOFF_MIN_MS;
	esbank_async_on_lost(a, buscall_lost_cb, t);
}

/* One connect() on a non-blocking socket: 0 and *fd, or -errno. */
static int buscall_connect_fd(const char *path, int *fd)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	strcpy(addr.sun_path, path);
	*fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (*fd < 0)
		return -errno;
	if (connect(*fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
		return 0;
	int rc = -errno;
	close(*fd);
	*fd = -1;
	return rc;
}

static void buscall_connect(buscall_table_t *t)
{
	esbank_async_t *a;
	int fd;
	int rc = buscall_connect_fd(t->path, &fd);
	if (rc == 0)
		rc = esbank_async_attach(t->loop, fd, &a);
	if (rc < 0) {
		diag_debug("bus at %s: %s; retrying", t->path, strerror(-rc));
		buscall_retry_later(t);
		return;
	}
	buscall_up_with(t, a);
	diag_info("connected to the bus");
}

static void buscall_retry_cb(uv_timer_t *timer)
{
	buscall_table_t *t = timer->data;
	if (!t->stopping && !t->link)
		buscall_connect(t);
}

static void buscall_retry_later(buscall_table_t *t)
{
	if (t->stopping || t->attached)
		return;
	uv_timer_start(&t->retry, buscall_retry_cb, t->backoff_ms, 0);
	t->backoff_ms *= 2;
	if (t->backoff_ms > BUSCALL_BACKOFF_MAX_MS)
		t->backoff_ms = BUSCALL_BACKOFF_MAX_MS;
}

int buscall_init(buscall_table_t *t, uv_loop_t *loop)
{
	t->loop = loop;
	t->backoff_ms = BUSCALL_BACKOFF_MIN_MS;
	uv_timer_init(loop, &t->retry);
	t->retry.data = t;
	return 0;
}

void buscall_free(buscall_table_t *t)
{
	(void)t;
}

int buscall_start(buscall_table_t *t, const char *sock_path)
{
	if (strlen(sock_path) >= sizeof(t->path))
		return -ENAMETOOLONG;
	strcpy(t->path, sock_path);
	buscall_connect(t);
	return 0;
}

int buscall_attach(buscall_table_t *t, int fd)
{
	esbank_async_t *a;
	t->attached = true;
	int rc = esbank_async_attach(t->loop, fd, &a);
	if (rc == 0)
		buscall_up_with(t, a);
	return rc;
}

void buscall_stop(buscall_table_t *t)
{
	if (t->stopping)
		return;
	t->stopping = true;
	uv_timer_stop(&t->retry);
	uv_close((uv_handle_t *)&t->retry, NULL);
	if (t->link)
		esbank_async_close(t->link);
	t->link = NULL;
}

bool buscall_up(const buscall_table_t *t)
{
	return t->link != NULL;
}

size_t buscall_inflight(const buscall_table_t *t)
{
	return t->link ? esbank_async_inflight(t->link) : 0;
}

int buscall_send(buscall_table_t *t, const esbank_request_t *req, int timeout_ms,
                 buscall_reply_cb cb, void *ctx, uint64_t *id)
{
	assert(cb && id);
	if (!t->link)
		return -ENOTCONN;
	if (esbank_async_inflight(t->link) >= BUSCALLS_MAX)
		return -EBUSY;
	uint64_t lib_id;
	int rc = esbank_async_call_timed(t->link, req, timeout_ms, cb, ctx, &lib_id);
	if (rc < 0)
		return rc == -ENOBUFS ? -EBUSY : rc;
	assert(lib_id < (1ull << BUSCALL_ID_LINK_BITS));
	*id = t->generation << BUSCALL_ID_LINK_BITS | lib_id;
	return 0;
}

void buscall_cancel(buscall_table_t *t, uint64_t id)
{
	if (t->link && id >> BUSCALL_ID_LINK_BITS == t->generation)
		esbank_async_cancel(t->link, id & ((1ull << BUSCALL_ID_LINK_BITS) - 1));
}
