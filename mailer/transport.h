/*
 * transport.h - delivering one spooled mail: into the Maildir outbox, to
 * Mailgun's HTTP API, or to an SMTP server. The network transports run on
 * libcurl's multi interface driven by the mailer's libuv loop
 * (curl_multi_socket_action, a uv_poll_t per socket, one uv_timer_t), so
 * many deliveries are in flight at once and the loop never blocks on the
 * network.
 *
 * Outcome of a delivery (transport_status_t):
 *   SENT    the receiver took it: Maildir file in new/ (fsync'd), HTTP 2xx,
 *           SMTP 250 after the data.
 *   RETRY   may work later: network errors and timeouts, HTTP 5xx and 429,
 *           SMTP 4xx (and no reply at all).
 *   FAILED  never will: other HTTP 4xx (and 1xx/3xx), SMTP 5xx, a message
 *           that cannot be formed.
 */
#ifndef ESBANK_MAILER_TRANSPORT_H
#define ESBANK_MAILER_TRANSPORT_H

#include "maildir.h"
#include "spool.h"

#include <curl/curl.h>
#include <uv.h>

#define TRANSPORT_REASON_BYTES_MAX 300
#define TRANSPORT_RESPONSE_BYTES_MAX 256     /* kept of an HTTP answer, for the reason */
#define TRANSPORT_CONNECT_TIMEOUT_MS 10000
#define TRANSPORT_TIMEOUT_MS 30000           /* one whole delivery */
#define TRANSPORT_URL_BYTES_MAX 1024
#define TRANSPORT_HOST_BYTES_MAX 256

typedef enum { TRANSPORT_MAILDIR, TRANSPORT_MAILGUN, TRANSPORT_SMTP } transport_kind_t;
typedef enum { TRANSPORT_SENT, TRANSPORT_RETRY, TRANSPORT_FAILED } transport_status_t;

typedef struct {
	transport_kind_t kind;
	const char *outbox;         /* Maildir root */
	const char *from;           /* From header value ("name <addr>" or addr) */
	const char *smtp_url;       /* smtp://host:port or smtps://... */
	const char *starttls;       /* SMTP: "off", "try" or "required" */
	const char *mailgun_key;
	const char *mailgun_domain;
	const char *mailgun_base;   /* e.g. https://api.mailgun.net */
} transport_config_t;

typedef struct transport_job transport_job_t;
typedef void (*transport_done_cb)(transport_job_t *j, transport_status_t st, const char *reason);

/* One delivery. The caller fills entry, done and data; the rest is ours. */
struct transport_job {
	spool_entry_t entry;
	transport_done_cb done;
	void *data;
	/* network transports */
	CURL *easy;
	struct curl_slist *rcpt;
	char *form;                 /* Mailgun's urlencoded body */
	size_t read_off;            /* SMTP upload position */
	char response[TRANSPORT_RESPONSE_BYTES_MAX + 1];
	size_t response_len;
	char error[CURL_ERROR_SIZE];
};

typedef struct {
	const transport_config_t *cfg;
	uv_loop_t *loop;
	uv_timer_t timer;
	CURLM *multi;
	maildir_t md;
	char host[TRANSPORT_HOST_BYTES_MAX];
	char url[TRANSPORT_URL_BYTES_MAX];        /* Mailgun's messages URL */
	char envelope_from[LEDGER_EMAIL_BYTES_MAX + 3]; /* "<addr>" */
	size_t inflight;
} transport_t;

/* Sets up the transport. 0, -EINVAL (bad configuration, logged) or -errno. */
int transport_init(transport_t *t, uv_loop_t *loop, const transport_config_t *cfg);

/*
 * Starts delivering j. j->done runs exactly once with the outcome: at once,
 * inside this call, for the Maildir; later, from the loop, for the network
 * transports. j stays ours until then.
 */
void transport_send(transport_t *t, transport_job_t *j);

/* Stops the transport; deliveries in flight are abandoned (done not called). */
void transport_close(transport_t *t);

/* The transport's name for logs: "maildir", "mailgun" or "smtp". */
const char *transport_name(const transport_t *t);

#endif
