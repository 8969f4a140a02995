/*
 * mailer.c - the mailer's peer connection (docs/peers.md, Mailer).
 *
 * Messages (each a frame holding one msgpack map):
 *   -> bus  {"t":"hello","role":"mailer","hwm":N}   on every new connection
 *   <- bus  {"t":"mail","items":[{"ev":bin,"mail":bin}, ...]}
 *           ev: the encoded event (event.h); mail: a map with "to" (str),
 *           "account" (str of 16 digits, or uint), "code" (str; account_opened
 *           and code_reissued), "balance" (int cents after; money_withdrawn).
 *   -> bus  {"t":"ack","hwm":N}                      after each mail batch
 * N is the highest seq whose mail is written (DATA/mail/hwm, see maildir.c).
 * Items at or below N are skipped. An item that can never be mailed (bad
 * event, bad address, ...) is logged and skipped; a failure to write stops
 * the batch, and the ack tells how far it got.
 */
#include "mailer.h"
#include "config.h"
#include "conn.h"
#include "event.h"
#include "log.h"
#include "maildir.h"
#include "message.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAILER_CONNS_MAX 8
#define MAILER_HOST_BYTES_MAX 256

typedef struct {
	uv_loop_t *loop;
	listener_t listener;
	conn_t *conns[MAILER_CONNS_MAX];
	uv_signal_t sig_term, sig_int;
	maildir_t md;
	char *hwm_path;
	char *sock_path;
	uint64_t hwm;
	const mailer_config_t *cfg;
	char host[MAILER_HOST_BYTES_MAX];
	char msgid_domain[MESSAGE_DOMAIN_BYTES_MAX];
} mailer_t;

/* The details of one item, decoded. */
typedef struct {
	ledger_event_t ev;
	char to[LEDGER_EMAIL_BYTES_MAX + 1];
	char code[MESSAGE_CODE_BYTES_MAX + 1];
	uint64_t account;
	int64_t balance;
} mailer_item_t;

static void mailer_send_ack(conn_t *c, uint64_t hwm, const char *t)
{
	msgpack_packer *pk = conn_pack_begin(c);
	bool hello = strcmp(t, "hello") == 0;
	msgpack_pack_map(pk, hello ? 3 : 2);
	msg_pack_kv_str(pk, "t", t);
	if (hello)
		msg_pack_kv_str(pk, "role", "mailer");
	msg_pack_kv_u64(pk, "hwm", hwm);
	conn_pack_end(c);
}

static int mailer_decode_account(const msgpack_object *map, uint64_t *account)
{
	const char *s;
	size_t n;
	if (msg_get_u64(map, "account", account) == 0)
		return 0;
	if (msg_get_str(map, "account", &s, &n) < 0 || n != LEDGER_ACCOUNT_DIGITS)
		return -EINVAL;
	*account = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		*account = *account * 10 + (uint64_t)(s[i] - '0');
	}
	return 0;
}

/* Decodes the "mail" map of an item whose event is already in it->ev. */
static int mailer_decode_mail(const char *p, size_t n, mailer_item_t *it)
{
	msgpack_zone zone;
	msgpack_object map;
	msgpack_zone_init(&zone, 1024);
	int rc = msg_decode_map(p, n, &zone, &map);
	if (rc == 0)
		rc = msg_get_strcpy(&map, "to", it->to, sizeof(it->to));
	if (rc == 0)
		rc = mailer_decode_account(&map, &it->account);
	if (rc == 0 && it->ev.type == LEDGER_EV_MONEY_WITHDRAWN)
		rc = msg_get_i64(&map, "balance", &it->balance);
	else if (rc == 0)
		rc = msg_get_strcpy(&map, "code", it->code, sizeof(it->code));
	msgpack_zone_destroy(&zone);
	return rc < 0 ? -EINVAL : 0;
}

/* Composes and delivers one item. 0 (written or already there), -EINVAL
 * (can never be mailed: skip it) or another negative errno (retry later). */
static int mailer_deliver(mailer_t *m, const mailer_item_t *it)
{
	static char text[MESSAGE_BYTES_MAX];
	message_t msg = {
		.from = m->cfg->from, .to = it->to, .public_url = m->cfg->public_url,
		.msgid_domain = m->msgid_domain, .type = it->ev.type, .seq = it->ev.seq,
		.ts_ms = it->ev.ts_ms, .account = it->account, .code = it->code,
		.amount = it->ev.amount, .balance = it->balance,
	};
	size_t len;
	int rc = message_compose(&msg, text, sizeof(text), &len);
	if (rc < 0)
		return -EINVAL;
	char name[MAILDIR_NAME_MAX + 1];
	maildir_name(name, it->ev.ts_ms, it->ev.seq, m->host);
	rc = maildir_deliver(&m->md, name, text, len);
	if (rc == 1)
		log_info("mail for event %" PRIu64 " is in the outbox already", it->ev.seq);
	return rc < 0 ? rc : 0;
}

/* Handles one item: 0 to go on, negative errno to stop the batch. */
static int mailer_item(mailer_t *m, const msgpack_object *item)
{
	mailer_item_t it = { 0 };
	const char *ev, *mail;
	size_t ev_len, mail_len;
	if (item->type != MSGPACK_OBJECT_MAP || msg_get_bin(item, "ev", &ev, &ev_len) < 0 ||
	    msg_get_bin(item, "mail", &mail, &mail_len) < 0 ||
	    event_decode_bytes(ev, ev_len, &it.ev) < 0) {
		log_error("mail item without a valid event: skipped");
		return 0;
	}
	if (it.ev.seq <= m->hwm)
		return 0;
	int rc = -EINVAL;
	if (message_type_sends(it.ev.type) && mailer_decode_mail(mail, mail_len, &it) == 0)
		rc = mailer_deliver(m, &it);
	if (rc == -EINVAL)
		log_error("event %" PRIu64 ": mail cannot be composed (bad type, address or "
		          "details): skipped", it.ev.seq);
	else if (rc < 0)
		return rc;
	m->hwm = it.ev.seq;
	return 0;
}

static void mailer_on_mail(mailer_t *m, conn_t *c, const msgpack_object *msg)
{
	const msgpack_object *items = msg_get(msg, "items");
	if (!items || items->type != MSGPACK_OBJECT_ARRAY) {
		log_warn("mail message without items: ignored");
		return;
	}
	uint64_t before = m->hwm;
	for (uint32_t i = 0; i < items->via.array.size; i++) {
		int rc = mailer_item(m, &items->via.array.ptr[i]);
		if (rc < 0) {
			log_error("writing mail: %s; batch stopped at hwm %" PRIu64, strerror(-rc),
			          m->hwm);
			break;
		}
	}
	if (m->hwm != before) {
		int rc = maildir_hwm_write(m->hwm_path, m->hwm);
		if (rc < 0)
			log_error("%s: %s (mails are written; a resend is deduplicated)",
			          m->hwm_path, strerror(-rc));
	}
	mailer_send_ack(c, m->hwm, "ack");
}

static void mailer_on_frame(conn_t *c, const char *body, size_t len)
{
	mailer_t *m = c->data;
	msgpack_zone zone;
	msgpack_object msg;
	msgpack_zone_init(&zone, 4096);
	const msgpack_object *t = NULL;
	if (msg_decode_map(body, len, &zone, &msg) < 0)
		log_warn("undecodable frame from the bus: ignored");
	else if ((t = msg_get(&msg, "t")) != NULL && msg_str_eq(t, "mail"))
		mailer_on_mail(m, c, &msg);
	else
		log_warn("message the mailer does not understand: ignored");
	msgpack_zone_destroy(&zone);
}

static void mailer_on_close(conn_t *c)
{
	mailer_t *m = c->data;
	for (size_t i = 0; i < MAILER_CONNS_MAX; i++)
		if (m->conns[i] == c)
			m->conns[i] = NULL;
	free(c);
}

static void mailer_on_accept(listener_t *l)
{
	mailer_t *m = l->data;
	size_t slot = 0;
	while (slot < MAILER_CONNS_MAX && m->conns[slot])
		slot++;
	conn_t *c = calloc(1, sizeof(*c));
	if (!c) {
		log_error("out of memory accepting a connection");
		return;
	}
	conn_init(c, m->loop, mailer_on_frame, mailer_on_close);
	c->data = m;
	if (conn_accept(l, c) < 0)
		return; /* closed; on_close frees it */
	if (slot == MAILER_CONNS_MAX) {
		log_warn("more than %d connections: refused", MAILER_CONNS_MAX);
		conn_close(c);
		return;
	}
	m->conns[slot] = c;
	log_info("bus connected; hello with hwm %" PRIu64, m->hwm);
	mailer_send_ack(c, m->hwm, "hello");
}

static void mailer_on_signal(uv_signal_t *s, int signum)
{
	mailer_t *m = s->data;
	log_info("signal %d: stopping", signum);
	listener_close(&m->listener);
	for (size_t i = 0; i < MAILER_CONNS_MAX; i++)
		if (m->conns[i])
			conn_close(m->conns[i]);
	uv_close((uv_handle_t *)&m->sig_term, NULL);
	uv_close((uv_handle_t *)&m->sig_int, NULL);
	uv_stop(m->loop);
}

static int mailer_open_files(mailer_t *m)
{
	char *mail_dir = config_path(m->cfg->data_dir, "mail");
	char *outbox = mail_dir ? config_path(mail_dir, "outbox") : NULL;
	m->hwm_path = mail_dir ? config_path(mail_dir, "hwm") : NULL;
	int rc = outbox && m->hwm_path ? config_mkdirs(mail_dir, 0700) : -ENOMEM;
	if (rc == 0)
		rc = maildir_open(&m->md, outbox);
	if (rc == 0)
		rc = maildir_hwm_read(m->hwm_path, &m->hwm);
	if (rc < 0)
		log_error("%s: %s", outbox ? outbox : "mail", strerror(-rc));
	free(outbox);
	free(mail_dir);
	return rc;
}

static void mailer_init_names(mailer_t *m)
{
	if (gethostname(m->host, sizeof(m->host)) < 0 || !m->host[0])
		snprintf(m->host, sizeof(m->host), "localhost");
	m->host[sizeof(m->host) - 1] = '\0';
	message_msgid_domain(m->cfg->from, m->msgid_domain, sizeof(m->msgid_domain));
}

static int mailer_check_config(const mailer_config_t *cfg)
{
	if (!message_header_safe(cfg->from) || strlen(cfg->from) > MESSAGE_FROM_BYTES_MAX) {
		log_error("--from must be one line of at most %d bytes", MESSAGE_FROM_BYTES_MAX);
		return -EINVAL;
	}
	if (!message_header_safe(cfg->public_url) ||
	    strlen(cfg->public_url) > MESSAGE_URL_BYTES_MAX) {
		log_error("--public-url must be one line of at most %d bytes",
		          MESSAGE_URL_BYTES_MAX);
		return -EINVAL;
	}
	return 0;
}

static int mailer_listen(mailer_t *m)
{
	uv_signal_init(m->loop, &m->sig_term);
	uv_signal_init(m->loop, &m->sig_int);
	m->sig_term.data = m->sig_int.data = m;
	uv_signal_start(&m->sig_term, mailer_on_signal, SIGTERM);
	uv_signal_start(&m->sig_int, mailer_on_signal, SIGINT);
	m->sock_path = config_path(m->cfg->run_dir, "mailer.sock");
	int rc = m->sock_path ? config_mkdirs(m->cfg->run_dir, 0700) : -ENOMEM;
	m->listener.data = m;
	if (rc == 0)
		rc = listener_open(&m->listener, m->loop, m->sock_path, mailer_on_accept);
	if (rc < 0)
		log_error("%s: %s", m->sock_path ? m->sock_path : "mailer.sock", uv_strerror(rc));
	return rc;
}

int mailer_run(const mailer_config_t *cfg)
{
	static mailer_t m;
	m.cfg = cfg;
	m.loop = uv_default_loop();
	m.md.new_fd = -1;
	if (mailer_check_config(cfg) < 0)
		return EXIT_USAGE;
	mailer_init_names(&m);
	int code = EXIT_TEMPORARY;
	if (mailer_open_files(&m) < 0)
		goto out_files;
	if (mailer_listen(&m) < 0)
		goto out_files;
	log_info("listening on %s; hwm %" PRIu64, m.sock_path, m.hwm);
	uv_run(m.loop, UV_RUN_DEFAULT);
	code = 0;
out_files:
	maildir_close(&m.md);
	free(m.sock_path);
	free(m.hwm_path);
	return code;
}
