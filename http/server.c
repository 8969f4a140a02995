/*
 * server.c - HTTP/1.1 connections for the gateway (see server.h).
 *
 * Wire format: HTTP/1.1 requests (RFC 9112) parsed by http_parser; responses
 * always carry Content-Length, and "Connection: close" when the connection
 * ends after them. Persistent connections are the default (HTTP/1.0 and
 * "Connection: close" end after one response). "Expect: 100-continue" gets
 * an interim 100 once the headers are accepted.
 *
 * One request per connection is handled at a time: the parser is paused
 * after each whole request and reading stops until it is answered, so
 * pipelined requests are answered in order and a slow handler pushes back
 * on its client through TCP.
 *
 * Limits, and what a client that exceeds them gets (then the connection is
 * closed; other connections never notice):
 *   not HTTP (parser error)                         400 bad_http
 *   request line + headers > HTTP_HEADER_BYTES_MAX  431 headers_too_large
 *   URL > HTTP_URL_BYTES_MAX                        414 uri_too_long
 *   body > HTTP_BODY_BYTES_MAX (declared or sent)   413 too_large
 *   no byte for HTTP_IDLE_TIMEOUT_MS in a request,
 *   or a request taking HTTP_REQUEST_TIMEOUT_MS     408 timeout
 *   idle between requests for HTTP_IDLE_TIMEOUT_MS  closed silently
 *   the client closes mid-request                   closed silently
 *   over HTTP_CONNS_MAX connections                 closed at once
 *   unsent responses > HTTP_WRITE_QUEUE_MAX         reading pauses
 * A closing connection first shuts down its sending side and reads (and
 * drops) what the client still sends for up to HTTP_LINGER_MS, so that the
 * client sees the last response instead of a reset.
 */
#include "server.h"

#include "diag.h"

#include <assert.h>
#include <errno.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct http_conn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_shutdown_t shutdown;
	http_parser parser;
	http_server_t *srv;
	char *in;                /* received bytes; in[in_off..in_len) not parsed yet */
	size_t in_len;
	size_t in_off;
	http_req_t req;
	http_header_t expect;
	char field[HTTP_FIELD_NAME_MAX + 1];
	size_t field_len;        /* HTTP_FIELD_NAME_MAX + 1: too long to be ours */
	http_header_t *target;   /* where the header value being parsed goes */
	bool last_was_value;
	size_t header_bytes;
	int fail_status;         /* set by a parser callback that stops the parser */
	uint64_t req_deadline_ms;
	bool in_message;         /* between the first and the last byte of a request */
	bool busy;               /* a request is with the handler */
	bool keep_alive;
	bool eof;
	bool closing;
	bool parsing;
	bool reading;
	bool shut_done;          /* our sending side is shut down */
	int open_handles;
} http_conn_t;

typedef struct {
	uv_write_t w;
	http_conn_t *c;
	char data[];
} http_write_t;

static void conn_parse(http_conn_t *c);
static void conn_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void conn_close_handles(http_conn_t *c);
static void conn_close(http_conn_t *c, bool graceful);
static void conn_fail(http_conn_t *c, int status, const char *code, const char *message);

static http_conn_t *conn_of_req(http_req_t *req)
{
	return (http_conn_t *)((char *)req - offsetof(http_conn_t, req));
}

const char *http_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Unknown";
	}
}

/* ---- parser callbacks ---- */

static void header_reset(http_header_t *h)
{
	h->len = 0;
	h->value[0] = '\0';
	h->present = false;
	h->too_long = false;
}

static void conn_req_reset(http_conn_t *c)
{
	http_req_t *r = &c->req;
	r->url_len = 0;
	r->path = r->query = "";
	header_reset(&r->accept);
	header_reset(&r->authorization);
	header_reset(&r->idempotency_key);
	header_reset(&r->content_type);
	header_reset(&r->prefer);
	header_reset(&c->expect);
	r->body_len = 0;
	r->route = 0;
	r->call_id = 0;
	r->account[0] = '\0';
	r->login_held = false;
	c->field_len = 0;
	c->target = NULL;
	c->last_was_value = true;
	c->header_bytes = 0;
	c->fail_status = 0;
}

static int conn_stop(http_conn_t *c, int status)
{
	c->fail_status = status;
	return -1;
}

static int on_message_begin(http_parser *p)
{
	http_conn_t *c = p->data;
	conn_req_reset(c);
	c->in_message = true;
	c->req.start_ns = uv_hrtime();
	c->req_deadline_ms = uv_now(c->srv->loop) + HTTP_REQUEST_TIMEOUT_MS;
	return 0;
}

static int conn_count_header(http_conn_t *c, size_t n)
{
	c->header_bytes += n;
	return c->header_bytes > HTTP_HEADER_BYTES_MAX ? conn_stop(c, 431) : 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
	http_conn_t *c = p->data;
	if (conn_count_header(c, n) < 0)
		return -1;
	if (c->req.url_len + n > HTTP_URL_BYTES_MAX)
		return conn_stop(c, 414);
	memcpy(c->req.url + c->req.url_len, at, n);
	c->req.url_len += n;
	return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
	http_conn_t *c = p->data;
	if (conn_count_header(c, n) < 0)
		return -1;
	if (c->last_was_value) {
		c->last_was_value = false;
		c->field_len = 0;
	}
	if (c->field_len + n > HTTP_FIELD_NAME_MAX) {
		c->field_len = HTTP_FIELD_NAME_MAX + 1;
		return 0;
	}
	memcpy(c->field + c->field_len, at, n);
	c->field_len += n;
	return 0;
}

/* The header the field just read names, when it is one we keep. */
static http_header_t *conn_pick_header(http_conn_t *c)
{
	if (c->field_len > HTTP_FIELD_NAME_MAX)
		return NULL;
	c->field[c->field_len] = '\0';
	if (strcasecmp(c->field, "accept") == 0)
		return &c->req.accept;
	if (strcasecmp(c->field, "authorization") == 0)
		return &c->req.authorization;
	if (strcasecmp(c->field, "idempotency-key") == 0)
		return &c->req.idempotency_key;
	if (strcasecmp(c->field, "content-type") == 0)
		return &c->req.content_type;
	if (strcasecmp(c->field, "prefer") == 0)
		return &c->req.prefer;
	if (strcasecmp(c->field, "expect") == 0)
		return &c->expect;
	return NULL;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
	http_conn_t *c = p->data;
	if (conn_count_header(c, n) < 0)
		return -1;
	if (!c->last_was_value) {
		c->last_was_value = true;
		c->target = conn_pick_header(c);
		if (c->target) {
			header_reset(c->target);
			c->target->present = true;
		}
	}
	http_header_t *h = c->target;
	if (!h || h->too_long)
		return 0;
	if (h->len + n > HTTP_HEADER_VALUE_MAX) {
		h->too_long = true;
		return 0;
	}
	memcpy(h->value + h->len, at, n);
	h->len += n;
	h->value[h->len] = '\0';
	return 0;
}

static void conn_write(http_conn_t *c, const char *head, size_t hn, const char *body, size_t bn);

static int on_headers_complete(http_parser *p)
{
	http_conn_t *c = p->data;
	http_req_t *r = &c->req;
	r->method = p->method;
	r->url[r->url_len] = '\0';
	char *q = strchr(r->url, '?');
	if (q)
		*q = '\0';
	r->path = r->url;
	r->query = q ? q + 1 : r->url + r->url_len;
	if (p->content_length != ULLONG_MAX && p->content_length > HTTP_BODY_BYTES_MAX)
		return conn_stop(c, 413);
	if (c->expect.present && strcasecmp(c->expect.value, "100-continue") == 0 &&
	    (p->http_major > 1 || (p->http_major == 1 && p->http_minor >= 1))) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		conn_write(c, cont, sizeof(cont) - 1, NULL, 0);
	}
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
	http_conn_t *c = p->data;
	http_req_t *r = &c->req;
	if (r->body_len + n > HTTP_BODY_BYTES_MAX)
		return conn_stop(c, 413);
	if (r->body_len + n + 1 > r->body_cap) {
		size_t cap = r->body_cap ? r->body_cap : 1024;
		while (cap < r->body_len + n + 1)
			cap *= 2;
		char *b = realloc(r->body, cap);
		if (!b)
			return conn_stop(c, 500);
		r->body = b;
		r->body_cap = cap;
	}
	memcpy(r->body + r->body_len, at, n);
	r->body_len += n;
	return 0;
}

static int on_message_complete(http_parser *p)
{
	http_conn_t *c = p->data;
	c->in_message = false;
	c->keep_alive = http_should_keep_alive(p);
	if (c->req.body)
		c->req.body[c->req.body_len] = '\0';
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings http_settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

/* ---- writing ---- */

static void conn_write_cb(uv_write_t *w, int status)
{
	http_write_t *hw = (http_write_t *)w;
	http_conn_t *c = hw->c;
	free(hw);
	if (c->closing)
		return;
	if (status < 0) {
		diag_debug("http write: %s", uv_strerror(status));
		conn_close(c, false);
		return;
	}
	conn_parse(c); /* reading may have paused on a full write queue */
}

/* Queues head then body as one write. */
static void conn_write(http_conn_t *c, const char *head, size_t hn, const char *body, size_t bn)
{
	http_write_t *hw = malloc(sizeof(*hw) + hn + bn);
	if (!hw) {
		conn_close(c, false);
		return;
	}
	hw->c = c;
	memcpy(hw->data, head, hn);
	if (bn)
		memcpy(hw->data + hn, body, bn);
	uv_buf_t buf = uv_buf_init(hw->data, (unsigned)(hn + bn));
	int rc = uv_write(&hw->w, (uv_stream_t *)&c->tcp, &buf, 1, conn_write_cb);
	if (rc < 0) {
		free(hw);
		diag_debug("http write: %s", uv_strerror(rc));
		conn_close(c, false);
	}
}

static bool conn_write_full(http_conn_t *c)
{
	return uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > HTTP_WRITE_QUEUE_MAX;
}

void http_respond(http_req_t *req, int status, const char *content_type, const char *body,
                  size_t len, const char *extra_headers)
{
	http_conn_t *c = conn_of_req(req);
	assert(c->busy && !c->closing);
	c->busy = false;
	req->call_id = 0;
	if (c->srv->on_response)
		c->srv->on_response(c->srv, req, status);
	bool keep = c->keep_alive && !c->eof && !c->srv->stopping;
	char head[1024];
	int hn = snprintf(head, sizeof(head),
	                  "HTTP/1.1 %d %s\r\nServer: esbank\r\nContent-Type: %s\r\n"
	                  "Content-Length: %zu\r\nCache-Control: no-store\r\n"
	                  "%sConnection: %s\r\n\r\n",
	                  status, http_reason(status), content_type, len,
	                  extra_headers ? extra_headers : "", keep ? "keep-alive" : "close");
	assert(hn > 0 && (size_t)hn < sizeof(head));
	conn_write(c, head, (size_t)hn, body, len);
	if (c->closing)
		return;
	if (!keep) {
		conn_close(c, true);
		return;
	}
	if (!c->parsing)
		conn_parse(c);
}

static void conn_fail(http_conn_t *c, int status, const char *code, const char *message)
{
	assert(!c->busy);
	char body[256];
	int n = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"message\":\"%s\"}", code,
	                 message);
	c->busy = true;
	c->keep_alive = false;
	if (!c->in_message)
		c->req.start_ns = uv_hrtime();
	c->req.route = 0;
	http_respond(&c->req, status, "application/json", body, (size_t)n, NULL);
}

static void conn_fail_parse(http_conn_t *c)
{
	char msg[64];
	switch (c->fail_status) {
	case 413:
		snprintf(msg, sizeof(msg), "request body over %d bytes", HTTP_BODY_BYTES_MAX);
		conn_fail(c, 413, "too_large", msg);
		break;
	case 414:
		conn_fail(c, 414, "uri_too_long", "request target too long");
		break;
	case 431:
		conn_fail(c, 431, "headers_too_large", "header section too large");
		break;
	case 500:
		conn_fail(c, 500, "internal", "out of memory");
		break;
	default:
		conn_fail(c, 400, "bad_http",
		          http_errno_description(HTTP_PARSER_ERRNO(&c->parser)));
	}
}

/* ---- reading, timing, closing ---- */

static void conn_timer_cb(uv_timer_t *t);

static void conn_arm_timer(http_conn_t *c)
{
	if (c->busy) {
		uv_timer_stop(&c->timer); /* the handler has its own deadline */
		return;
	}
	uint64_t timeout_ms = HTTP_IDLE_TIMEOUT_MS;
	if (c->in_message) {
		uint64_t now = uv_now(c->srv->loop);
		uint64_t left = c->req_deadline_ms > now ? c->req_deadline_ms - now : 1;
		if (left < timeout_ms)
			timeout_ms = left;
	}
	uv_timer_start(&c->timer, conn_timer_cb, timeout_ms, 0);
}

static void conn_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	http_conn_t *c = h->data;
	if (c->in_off > 0) {
		memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
		c->in_len -= c->in_off;
		c->in_off = 0;
	}
	*buf = uv_buf_init(c->in + c->in_len, (unsigned)(HTTP_READ_BUF_BYTES - c->in_len));
}

static void conn_update_reading(http_conn_t *c)
{
	bool want = !c->busy && !c->eof && !conn_write_full(c) &&
	            c->in_len - c->in_off < HTTP_READ_BUF_BYTES;
	if (c->closing)
		want = !c->eof; /* draining after our last response */
	if (want && !c->reading) {
		int rc = uv_read_start((uv_stream_t *)&c->tcp, conn_alloc_cb, conn_read_cb);
		c->reading = rc == 0;
	} else if (!want && c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = false;
	}
}

static void conn_parse(http_conn_t *c)
{
	c->parsing = true;
	while (!c->busy && !c->closing && c->in_off < c->in_len && !conn_write_full(c)) {
		size_t n = http_parser_execute(&c->parser, &http_settings, c->in + c->in_off,
		                               c->in_len - c->in_off);
		c->in_off += n;
		enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
		if (e == HPE_PAUSED) {
			http_parser_pause(&c->parser, 0);
			c->busy = true;
			uv_timer_stop(&c->timer);
			c->srv->on_request(c->srv, &c->req);
		} else if (e != HPE_OK || n == 0) {
			conn_fail_parse(c); /* n == 0: bytes after an upgrade; not ours */
		}
	}
	c->parsing = false;
	if (c->closing)
		return;
	if (c->in_off == c->in_len)
		c->in_off = c->in_len = 0;
	if (c->eof && !c->busy && c->in_len == 0) {
		conn_close(c, false); /* the client is gone, or stopped mid-request */
		return;
	}
	conn_arm_timer(c);
	conn_update_reading(c);
}

static void conn_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	http_conn_t *c = s->data;
	if (n == 0)
		return;
	if (n < 0) {
		if (n != UV_EOF)
			diag_debug("http read: %s", uv_strerror((int)n));
		c->eof = true;
		if (c->closing) {
			conn_update_reading(c);
			if (c->shut_done || n != UV_EOF)
				conn_close_handles(c);
		} else if (n != UV_EOF) {
			conn_close(c, false);
		} else {
			conn_parse(c);
		}
		return;
	}
	if (c->closing) {
		c->in_len = c->in_off = 0; /* dropped while lingering */
		return;
	}
	c->in_len += (size_t)n;
	conn_parse(c);
}

static void conn_handle_closed_cb(uv_handle_t *h)
{
	http_conn_t *c = h->data;
	if (--c->open_handles > 0)
		return;
	c->srv->nconns--;
	free(c->req.body);
	free(c->in);
	free(c);
}

static void conn_close_handles(http_conn_t *c)
{
	if (uv_is_closing((uv_handle_t *)&c->tcp))
		return;
	uv_close((uv_handle_t *)&c->tcp, conn_handle_closed_cb);
	uv_close((uv_handle_t *)&c->timer, conn_handle_closed_cb);
}

static void conn_shutdown_cb(uv_shutdown_t *req, int status)
{
	http_conn_t *c = req->data;
	c->shut_done = true;
	if (status < 0 || c->eof)
		conn_close_handles(c);
	/* else keep draining until EOF or the linger timer */
}

static void conn_close(http_conn_t *c, bool graceful)
{
	if (c->closing)
		return;
	c->closing = true;
	if (c->busy) {
		if (c->srv->on_cancel)
			c->srv->on_cancel(c->srv, &c->req);
		c->busy = false;
	}
	c->in_len = c->in_off = 0;
	c->shutdown.data = c;
	if (graceful &&
	    uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, conn_shutdown_cb) == 0) {
		uv_timer_start(&c->timer, conn_timer_cb, HTTP_LINGER_MS, 0);
		conn_update_reading(c);
		return;
	}
	conn_close_handles(c);
}

static void conn_timer_cb(uv_timer_t *t)
{
	http_conn_t *c = t->data;
	if (c->closing)
		conn_close_handles(c); /* linger over */
	else if (c->in_message)
		conn_fail(c, 408, "timeout", "request not complete in time");
	else
		conn_close(c, false);
}

/* ---- accepting ---- */

static void conn_set_peer(http_conn_t *c)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	snprintf(c->req.peer, sizeof(c->req.peer), "unknown");
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
		uv_ip_name((struct sockaddr *)&ss, c->req.peer, sizeof(c->req.peer));
}

static http_conn_t *conn_new(http_server_t *s)
{
	http_conn_t *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->in = malloc(HTTP_READ_BUF_BYTES);
	if (!c->in) {
		free(c);
		return NULL;
	}
	c->srv = s;
	c->req.server = s;
	uv_tcp_init(s->loop, &c->tcp);
	uv_timer_init(s->loop, &c->timer);
	c->tcp.data = c->timer.data = c;
	c->open_handles = 2;
	s->nconns++;
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	conn_req_reset(c);
	return c;
}

static void server_connection_cb(uv_stream_t *ls, int status)
{
	http_server_t *s = ls->data;
	if (status < 0) {
		diag_warn("http accept: %s", uv_strerror(status));
		return;
	}
	http_conn_t *c = conn_new(s);
	if (!c) {
		diag_error("http accept: out of memory");
		return;
	}
	int rc = uv_accept(ls, (uv_stream_t *)&c->tcp);
	if (rc < 0 || s->nconns > HTTP_CONNS_MAX || s->stopping) {
		if (rc == 0 && !s->stopping)
			diag_warn("http: %d connections open; refusing one", HTTP_CONNS_MAX);
		c->closing = true;
		conn_close_handles(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	conn_set_peer(c);
	conn_arm_timer(c);
	conn_update_reading(c);
}

/* Parses "host:port" or "[v6]:port" into ss. */
static int server_parse_addr(const char *addr, struct sockaddr_storage *ss)
{
	char host[256];
	const char *colon = strrchr(addr, ':');
	if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof(host))
		return -EINVAL;
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end || port < 1 || port > 65535)
		return -EINVAL;
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	if (host[0] == '[') {
		size_t n = strlen(host);
		if (n < 3 || host[n - 1] != ']')
			return -EINVAL;
		host[n - 1] = '\0';
		return uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)ss) ? -EINVAL : 0;
	}
	if (strcmp(host, "localhost") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0)
		return 0;
	return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) ? -EINVAL : 0;
}

int http_server_start(http_server_t *s, uv_loop_t *loop, const char *addr)
{
	assert(s->on_request);
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (server_parse_addr(addr, &ss) < 0)
		return -EINVAL;
	s->loop = loop;
	s->nconns = 0;
	s->stopping = false;
	int rc = uv_tcp_init(loop, &s->tcp);
	if (rc < 0)
		return rc;
	s->tcp.data = s;
	rc = uv_tcp_bind(&s->tcp, (const struct sockaddr *)&ss, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&s->tcp, HTTP_LISTEN_BACKLOG, server_connection_cb);
	if (rc < 0) {
		uv_close((uv_handle_t *)&s->tcp, NULL);
		return rc;
	}
	return 0;
}

void http_server_stop(http_server_t *s)
{
	if (s->stopping)
		return;
	s->stopping = true;
	uv_close((uv_handle_t *)&s->tcp, NULL);
}
