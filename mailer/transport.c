/*
 * transport.c - delivering one spooled mail (see transport.h).
 *
 * Maildir: maildir_deliver() of the spooled message under its deterministic
 * name, synchronously (local files; an event already delivered is found and
 * not written again).
 *
 * Mailgun: POST {base}/v3/{domain}/messages with HTTP basic auth
 * "api:{key}" and an application/x-www-form-urlencoded body with the fields
 * from, to, subject, text (the message body, LF line endings) and
 * h:Message-Id (the message's own id, so that a resend carries the same id).
 *
 * SMTP: libcurl's SMTP upload of the spooled RFC 5322 message as it is
 * (libcurl dot-stuffs it), envelope sender the bare address of From,
 * one recipient. STARTTLS: "required" (CURLUSESSL_ALL), "try"
 * (CURLUSESSL_TRY) or "off". Credentials go in the URL
 * (smtp://user:pass@host:port).
 */
#include "transport.h"
#include "diag.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
	uv_poll_t poll;
	curl_socket_t fd;
	transport_t *t;
} transport_sock_t;

const char *transport_name(const transport_t *t)
{
	static const char *const names[] = { "maildir", "mailgun", "smtp" };
	return names[t->cfg->kind];
}

/* ---- libcurl's multi interface on the libuv loop ---- */

static void transport_finish(transport_t *t, transport_job_t *j, transport_status_t st,
                             const char *reason)
{
	if (j->easy) {
		curl_multi_remove_handle(t->multi, j->easy);
		curl_easy_cleanup(j->easy);
		j->easy = NULL;
	}
	curl_slist_free_all(j->rcpt);
	j->rcpt = NULL;
	free(j->form);
	j->form = NULL;
	t->inflight--;
	j->done(j, st, reason);
}

static transport_status_t transport_classify(transport_t *t, transport_job_t *j, CURLcode res,
                                             char *reason, size_t cap)
{
	long code = 0;
	curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &code);
	const char *what = j->error[0] ? j->error : curl_easy_strerror(res);
	if (t->cfg->kind == TRANSPORT_SMTP) {
		snprintf(reason, cap, "SMTP %ld: %s", code, res == CURLE_OK ? "ok" : what);
		if (res == CURLE_OK)
			return TRANSPORT_SENT;
		return code >= 500 && code < 600 ? TRANSPORT_FAILED : TRANSPORT_RETRY;
	}
	if (res != CURLE_OK) {
		snprintf(reason, cap, "HTTP: %s", what);
		return TRANSPORT_RETRY;
	}
	snprintf(reason, cap, "HTTP %ld: %.*s", code, (int)j->response_len, j->response);
	spool_one_line(reason);
	if (code >= 200 && code < 300)
		return TRANSPORT_SENT;
	if (code == 429 || code >= 500)
		return TRANSPORT_RETRY;
	return TRANSPORT_FAILED;
}

static void transport_check_done(transport_t *t)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(t->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		transport_job_t *j = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&j);
		char reason[TRANSPORT_REASON_BYTES_MAX];
		transport_status_t st = transport_classify(t, j, msg->data.result, reason,
		                                           sizeof(reason));
		transport_finish(t, j, st, reason);
	}
}

static void transport_on_poll(uv_poll_t *p, int status, int events)
{
	transport_sock_t *ts = p->data;
	transport_t *t = ts->t;
	int flags = status < 0 ? CURL_CSELECT_ERR : 0;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	int running;
	curl_multi_socket_action(t->multi, ts->fd, flags, &running);
	transport_check_done(t);
}

static void transport_on_timer(uv_timer_t *timer)
{
	transport_t *t = timer->data;
	int running;
	curl_multi_socket_action(t->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	transport_check_done(t);
}

static void transport_sock_free(uv_handle_t *h)
{
	free(h->data);
}

static int transport_on_socket(CURL *easy, curl_socket_t fd, int what, void *userp,
                               void *socketp)
{
	transport_t *t = userp;
	transport_sock_t *ts = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (ts) {
			uv_poll_stop(&ts->poll);
			uv_close((uv_handle_t *)&ts->poll, transport_sock_free);
			curl_multi_assign(t->multi, fd, NULL);
		}
		return 0;
	}
	if (!ts) {
		ts = calloc(1, sizeof(*ts));
		if (!ts || uv_poll_init_socket(t->loop, &ts->poll, fd) < 0) {
			free(ts);
			return -1;
		}
		ts->fd = fd;
		ts->t = t;
		ts->poll.data = ts;
		curl_multi_assign(t->multi, fd, ts);
	}
	int events = ((what & CURL_POLL_IN) ? UV_READABLE : 0) |
	             ((what & CURL_POLL_OUT) ? UV_WRITABLE : 0);
	uv_poll_start(&ts->poll, events, transport_on_poll);
	return 0;
}

static int transport_on_timeout(CURLM *multi, long timeout_ms, void *userp)
{
	transport_t *t = userp;
	if (timeout_ms < 0)
		uv_timer_stop(&t->timer);
	else
		uv_timer_start(&t->timer, transport_on_timer, (uint64_t)timeout_ms, 0);
	return 0;
}

/* ---- building the requests ---- */

static size_t transport_on_write(char *p, size_t size, size_t n, void *userp)
{
	transport_job_t *j = userp;
	size_t len = size * n, room = TRANSPORT_RESPONSE_BYTES_MAX - j->response_len;
	size_t take = len < room ? len : room;
	memcpy(j->response + j->response_len, p, take);
	j->response_len += take;
	j->response[j->response_len] = '\0';
	return len;
}

static size_t transport_on_read(char *p, size_t size, size_t n, void *userp)
{
	transport_job_t *j = userp;
	size_t room = size * n, left = j->entry.msg_len - j->read_off;
	size_t take = left < room ? left : room;
	memcpy(p, j->entry.msg + j->read_off, take);
	j->read_off += take;
	return take;
}

/* The value of header name in the spooled message ("" when missing). */
static void transport_header(const spool_entry_t *e, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);
	const char *p = e->msg, *end = e->msg + e->msg_len;
	out[0] = '\0';
	while (p < end && !(end - p >= 2 && p[0] == '\r' && p[1] == '\n')) {
		const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		if (!eol)
			return;
		if ((size_t)(eol - p) > nl + 1 && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1 + (p[nl + 1] == ' ');
			snprintf(out, cap, "%.*s", (int)(eol - v), v);
			return;
		}
		p = eol + 2;
	}
}

/* The body after the blank line, with CRLF as LF, malloc'd; NULL on ENOMEM. */
static char *transport_body(const spool_entry_t *e)
{
	const char *b = memmem(e->msg, e->msg_len, "\r\n\r\n", 4);
	b = b ? b + 4 : e->msg + e->msg_len;
	size_t n = (size_t)(e->msg + e->msg_len - b);
	char *out = malloc(n + 1), *o = out;
	for (size_t i = 0; out && i < n; i++)
		if (!(b[i] == '\r' && i + 1 < n && b[i + 1] == '\n'))
			*o++ = b[i];
	if (out)
		*o = '\0';
	return out;
}

/* Appends "&name=value" (urlencoded) to *form; -ENOMEM. */
static int transport_form_add(CURL *easy, char **form, size_t *len, const char *name,
                              const char *value)
{
	char *v = curl_easy_escape(easy, value, 0);
	char *k = curl_easy_escape(easy, name, 0);
	size_t need = *len + strlen(k) + strlen(v) + 3;
	char *f = v && k ? realloc(*form, need) : NULL;
	if (f) {
		*len += (size_t)sprintf(f + *len, "%s%s=%s", *len ? "&" : "", k, v);
		*form = f;
	}
	curl_free(v);
	curl_free(k);
	return f ? 0 : -ENOMEM;
}

static int transport_mailgun(transport_t *t, transport_job_t *j)
{
	const spool_entry_t *e = &j->entry;
	char msgid[256];
	transport_header(e, "Message-ID", msgid, sizeof(msgid));
	char *text = transport_body(e);
	size_t len = 0;
	int rc = text ? 0 : -ENOMEM;
	if (rc == 0)
		rc = transport_form_add(j->easy, &j->form, &len, "from", t->cfg->from);
	if (rc == 0)
		rc = transport_form_add(j->easy, &j->form, &len, "to", e->to);
	if (rc == 0)
		rc = transport_form_add(j->easy, &j->form, &len, "subject", e->subject);
	if (rc == 0)
		rc = transport_form_add(j->easy, &j->form, &len, "text", text);
	if (rc == 0 && msgid[0])
		rc = transport_form_add(j->easy, &j->form, &len, "h:Message-Id", msgid);
	free(text);
	if (rc < 0)
		return rc;
	curl_easy_setopt(j->easy, CURLOPT_URL, t->url);
	curl_easy_setopt(j->easy, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
	curl_easy_setopt(j->easy, CURLOPT_USERNAME, "api");
	curl_easy_setopt(j->easy, CURLOPT_PASSWORD, t->cfg->mailgun_key);
	curl_easy_setopt(j->easy, CURLOPT_POSTFIELDS, j->form);
	curl_easy_setopt(j->easy, CURLOPT_POSTFIELDSIZE, (long)len);
	curl_easy_setopt(j->easy, CURLOPT_WRITEFUNCTION, transport_on_write);
	curl_easy_setopt(j->easy, CURLOPT_WRITEDATA, j);
	return 0;
}

static int transport_smtp(transport_t *t, transport_job_t *j)
{
	char rcpt[LEDGER_EMAIL_BYTES_MAX + 3];
	snprintf(rcpt, sizeof(rcpt), "<%s>", j->entry.to);
	j->rcpt = curl_slist_append(NULL, rcpt);
	if (!j->rcpt)
		return -ENOMEM;
	const char *tls = t->cfg->starttls;
	long use_ssl = strcmp(tls, "required") == 0 ? CURLUSESSL_ALL
	               : strcmp(tls, "try") == 0    ? CURLUSESSL_TRY
	                                            : CURLUSESSL_NONE;
	curl_easy_setopt(j->easy, CURLOPT_URL, t->cfg->smtp_url);
	curl_easy_setopt(j->easy, CURLOPT_USE_SSL, use_ssl);
	curl_easy_setopt(j->easy, CURLOPT_MAIL_FROM, t->envelope_from);
	curl_easy_setopt(j->easy, CURLOPT_MAIL_RCPT, j->rcpt);
	curl_easy_setopt(j->easy, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(j->easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)j->entry.msg_len);
	curl_easy_setopt(j->easy, CURLOPT_READFUNCTION, transport_on_read);
	curl_easy_setopt(j->easy, CURLOPT_READDATA, j);
	return 0;
}

static void transport_send_maildir(transport_t *t, transport_job_t *j)
{
	char name[MAILDIR_NAME_MAX + 1], reason[TRANSPORT_REASON_BYTES_MAX];
	mailname_format(name, j->entry.ts_ms, j->entry.seq, t->host);
	int rc = maildir_deliver(&t->md, name, j->entry.msg, j->entry.msg_len);
	snprintf(reason, sizeof(reason), "maildir: %s", rc < 0 ? strerror(-rc) : "ok");
	t->inflight++;
	transport_finish(t, j, rc < 0 ? TRANSPORT_RETRY : TRANSPORT_SENT, reason);
}

void transport_send(transport_t *t, transport_job_t *j)
{
	j->easy = NULL;
	j->rcpt = NULL;
	j->form = NULL;
	j->read_off = j->response_len = 0;
	j->response[0] = j->error[0] = '\0';
	if (t->cfg->kind == TRANSPORT_MAILDIR) {
		transport_send_maildir(t, j);
		return;
	}
	t->inflight++;
	j->easy = curl_easy_init();
	int rc = j->easy ? 0 : -ENOMEM;
	if (rc == 0)
		rc = t->cfg->kind == TRANSPORT_SMTP ? transport_smtp(t, j) : transport_mailgun(t, j);
	if (rc == 0) {
		curl_easy_setopt(j->easy, CURLOPT_PRIVATE, (char *)j);
		curl_easy_setopt(j->easy, CURLOPT_ERRORBUFFER, j->error);
		curl_easy_setopt(j->easy, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(j->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)TRANSPORT_CONNECT_TIMEOUT_MS);
		curl_easy_setopt(j->easy, CURLOPT_TIMEOUT_MS, (long)TRANSPORT_TIMEOUT_MS);
		if (curl_multi_add_handle(t->multi, j->easy) != CURLM_OK)
			rc = -ENOMEM;
	}
	if (rc < 0)
		transport_finish(t, j, TRANSPORT_RETRY, "out of memory starting a delivery");
}

/* ---- setup ---- */

static int transport_check(transport_t *t)
{
	const transport_config_t *c = t->cfg;
	if (c->kind == TRANSPORT_SMTP && strncmp(c->smtp_url, "smtp://", 7) != 0 &&
	    strncmp(c->smtp_url, "smtps://", 8) != 0) {
		diag_error("the SMTP URL must start with smtp:// or smtps://");
		return -EINVAL;
	}
	if (c->kind == TRANSPORT_SMTP && strcmp(c->starttls, "off") != 0 &&
	    strcmp(c->starttls, "try") != 0 && strcmp(c->starttls, "required") != 0) {
		diag_error("--starttls is off, try or required, not '%s'", c->starttls);
		return -EINVAL;
	}
	if (c->kind == TRANSPORT_MAILGUN && (!c->mailgun_key || !*c->mailgun_key ||
	                                     !c->mailgun_domain || !*c->mailgun_domain)) {
		diag_error("mailgun needs MAILGUN_API_PRIVATE_KEY and MAILGUN_DOMAIN");
		return -EINVAL;
	}
	size_t bl = c->mailgun_base ? strlen(c->mailgun_base) : 0;
	while (bl > 0 && c->mailgun_base[bl - 1] == '/')
		bl--;
	if (c->kind == TRANSPORT_MAILGUN &&
	    snprintf(t->url, sizeof(t->url), "%.*s/v3/%s/messages", (int)bl, c->mailgun_base,
	             c->mailgun_domain) >= (int)sizeof(t->url)) {
		diag_error("the Mailgun URL is too long");
		return -EINVAL;
	}
	return 0;
}

/* "<addr>" from "name <addr>" or "addr". */
static void transport_envelope(transport_t *t)
{
	const char *f = t->cfg->from, *lt = strrchr(f, '<');
	const char *a = lt ? lt + 1 : f;
	size_t n = strcspn(a, ">");
	if (n > LEDGER_EMAIL_BYTES_MAX)
		n = LEDGER_EMAIL_BYTES_MAX;
	snprintf(t->envelope_from, sizeof(t->envelope_from), "<%.*s>", (int)n, a);
}

int transport_init(transport_t *t, uv_loop_t *loop, const transport_config_t *cfg)
{
	memset(t, 0, sizeof(*t));
	t->cfg = cfg;
	t->loop = loop;
	t->md.new_fd = -1;
	if (gethostname(t->host, sizeof(t->host)) < 0 || !t->host[0])
		snprintf(t->host, sizeof(t->host), "localhost");
	t->host[sizeof(t->host) - 1] = '\0';
	transport_envelope(t);
	int rc = transport_check(t);
	if (rc < 0)
		return rc;
	if (cfg->kind == TRANSPORT_MAILDIR)
		return maildir_open(&t->md, cfg->outbox);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -ENOMEM;
	t->multi = curl_multi_init();
	if (!t->multi)
		return -ENOMEM;
	uv_timer_init(loop, &t->timer);
	t->timer.data = t;
	curl_multi_setopt(t->multi, CURLMOPT_SOCKETFUNCTION, transport_on_socket);
	curl_multi_setopt(t->multi, CURLMOPT_SOCKETDATA, t);
	curl_multi_setopt(t->multi, CURLMOPT_TIMERFUNCTION, transport_on_timeout);
	curl_multi_setopt(t->multi, CURLMOPT_TIMERDATA, t);
	return 0;
}

void transport_close(transport_t *t)
{
	maildir_close(&t->md);
	if (!t->multi)
		return;
	uv_timer_stop(&t->timer);
	uv_close((uv_handle_t *)&t->timer, NULL);
	curl_multi_cleanup(t->multi); /* removes the sockets: REMOVE callbacks close polls */
	t->multi = NULL;
}
