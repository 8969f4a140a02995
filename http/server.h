/*
 * server.h - the HTTP/1.1 server of the gateway: TCP connections, request
 * parsing (http_parser), keep-alive, limits and timeouts.
 *
 * The server hands each whole request to on_request, one request per
 * connection at a time; the handler answers it, now or later, with exactly
 * one http_respond(). If the connection dies first, on_cancel runs instead
 * (the handler must then forget the request: it is freed after on_cancel).
 */
#ifndef ESBANK_HTTP_SERVER_H
#define ESBANK_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define HTTP_CONNS_MAX 1024
#define HTTP_HEADER_BYTES_MAX (16 * 1024) /* request line + header fields, else 431 */
#define HTTP_URL_BYTES_MAX 2048           /* else 414 */
#define HTTP_BODY_BYTES_MAX (64 * 1024)   /* else 413 */
#define HTTP_FIELD_NAME_MAX 64            /* longer header names are not ones we read */
#define HTTP_HEADER_VALUE_MAX 512         /* kept value of a header the routes read */
#define HTTP_READ_BUF_BYTES (16 * 1024)
#define HTTP_WRITE_QUEUE_MAX (256 * 1024) /* stop reading while more is unsent */
#define HTTP_IDLE_TIMEOUT_MS 15000        /* no byte while idle or mid-request */
#define HTTP_REQUEST_TIMEOUT_MS 30000     /* first byte to last byte of one request */
#define HTTP_LINGER_MS 5000               /* flushing a last response before close */
#define HTTP_PEER_MAX 64
#define HTTP_LISTEN_BACKLOG 511
#define HTTP_ACCOUNT_MAX 64

typedef struct http_server http_server_t;

/* A header the routes read: its value (NUL-terminated) and whether present. */
typedef struct {
	char value[HTTP_HEADER_VALUE_MAX + 1];
	size_t len;
	bool present;
	bool too_long; /* value was cut: the route answers 400 */
} http_header_t;

typedef struct http_req {
	http_server_t *server;
	int method;                     /* enum http_method */
	char url[HTTP_URL_BYTES_MAX + 1];
	size_t url_len;
	const char *path;               /* url up to '?', NUL-terminated in place */
	const char *query;              /* after '?', or "" */
	http_header_t accept;
	http_header_t authorization;
	http_header_t idempotency_key;
	http_header_t content_type;
	http_header_t prefer;           /* RFC 7240 (the routes read dry-run) */
	char *body;                     /* body_len bytes, NUL-terminated */
	size_t body_len;
	size_t body_cap;
	char peer[HTTP_PEER_MAX];       /* client address, without port */
	uint64_t start_ns;
	/* Owned by the handler: */
	int route;                      /* metrics label index; 0 until routed */
	uint64_t call_id;               /* bus request in flight, 0 when none */
	char account[HTTP_ACCOUNT_MAX]; /* the logged-in or logging-in account */
	bool login_held;                /* a login attempt holds its place (login.h) */
} http_req_t;

typedef void (*http_req_cb)(http_server_t *s, http_req_t *req);
typedef void (*http_done_cb)(http_server_t *s, http_req_t *req, int status);

struct http_server {
	uv_tcp_t tcp;
	uv_loop_t *loop;
	size_t nconns;
	bool stopping;
	http_req_cb on_request;
	http_req_cb on_cancel;
	http_done_cb on_response; /* every response, routed or not (metrics) */
	void *data;
};

/*
 * Listens on addr ("host:port", "[v6]:port"). The callbacks must be set
 * first. Returns 0, -EINVAL for a malformed address, or a libuv error.
 */
int http_server_start(http_server_t *s, uv_loop_t *loop, const char *addr);

/* Stops accepting; open connections close after their current response. */
void http_server_stop(http_server_t *s);

/*
 * Answers req: status, Content-Type, body[0..len) (copied), and extra
 * header lines (each ending "\r\n", or NULL). Afterwards req belongs to the
 * server again.
 */
void http_respond(http_req_t *req, int status, const char *content_type, const char *body,
                  size_t len, const char *extra_headers);

/* The reason phrase of status ("Not Found"). */
const char *http_reason(int status);

#endif
