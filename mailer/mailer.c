/*
 * mailer.c - the mailer's peer connection (docs/peers.md, Mailer; docs/mail.md).
 *
 * Messages (each a frame holding one msgpack map):
 *   -> bus  {"t":"hello","role":"mailer","hwm":N,"pid":P[,"fresh":true]}
 *           on every new session (common/peer.h). "fresh" when DATA/mail/hwm does not
 *           exist (no spool at all): the bus then skips catch-up and starts
 *           this mailer at the end of the log.
 *   <- bus  {"t":"mail","items":[{"ev":bin[,"mail":bin]}, ...][,"hwm":D]}
 *           ev: the encoded event (event.h); mail (live items): a map with
 *           "to" (str), "account", "code" (str; account_opened and
 *           code_reissued), "balance" (int cents after; money_withdrawn).
 *           Catch-up items (from the log) have no "mail": a money_withdrawn
 *           one is addressed from the address book and uses the event's
 *           "balance"; one with "sent":true (its mail was delivered by the
 *           old primary before a failover) only teaches addresses and moves
 *           the hwm. "hwm": D, given to a fresh mailer, is where it starts.
 *           Items must come in increasing seq order. An account_opened
 *           event holds its email sealed: a catch-up one is opened with
 *           the account's key from DATA/keys (read-only here). An
 *           account_erased item (live, with the mail {"account","erased"},
 *           or from the log) makes the mailer forget the address: the
 *           address book is written anew without it, and no later notice
 *           for the account finds an address.
 *   -> bus  {"t":"ack","hwm":N}                      after each mail batch
 *   -> bus  {"t":"delivered","seqs":[S]}             each mail delivered (or dead)
 *           once its queue/ entry is removed, when a bus session is bound;
 *           the bus of a primary publishes it as a receipt (docs/replication.md,
 *           "Mail across failover"); one given while no bus is bound is not
 *           sent later (the window for a duplicate after a failover).
 * N is the highest seq whose mail is in the durable spool (or needs none),
 * kept in DATA/mail/hwm (maildir.c). Items at or below N are skipped. An
 * item that can never be mailed (bad event, bad address, no address known)
 * is logged and skipped.
 *
 * A failure to write the spool (or to make a batch durable) stops the batch:
 * the ack carries only the committed prefix, and the mailer must never move
 * its hwm past the failed mail. Later items of the same session would do
 * that (they are newer), so the session is ignored from then on and dropped
 * after MAILER_RESYNC_MS: the bus connects again, the hello gives the
 * committed hwm, and the bus sends every mail after it again (docs/mail.md).
 * A mail sent again is spooled again even when it is already queued: after a
 * failed fsync of queue/ its name may not be durable, and a fresh rename is
 * what the next fsync makes durable (spool.h).
 *
 * Order for one batch: each mail written to queue/<seq> (fsync), queue/ and
 * the address book fsync'd, hwm replaced (fsync), ack sent; deliveries start
 * after that, from the loop.
 */
#include "mailer.h"
#include "config.h"
#include "conn.h"
#include "event.h"
#include "diag.h"
#include "figures.h"
#include "maildir.h"
#include "message.h"
#include "peer.h"
#include "pii.h"
#include "protocol.h"
#include "spool.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAILER_RESYNC_MS 1000 /* after a failed batch, its session is dropped this late */

typedef struct {
	uv_loop_t *loop;
	peer_server_t bus; /* RUN/mailer.sock: one bus session at a time (peer.h) */
	uv_signal_t sig_term, sig_int, sig_hup;
	uv_timer_t drain_timer;
	uv_timer_t resync_timer;
	bool resync;            /* a batch of this session failed: ignore it until dropped */
	spool_t spool;
	transport_t transport;
	queue_t queue;
	char *hwm_path;
	char *sock_path;
	uint64_t hwm;
	bool fresh;
	mailer_config_t *cfg;
	char msgid_domain[MESSAGE_DOMAIN_BYTES_MAX];
	keystore_t keys;        /* DATA/keys, read-only, opened when first needed */
} mailer_t;

/* The queue finished a mail: tell the bus (a receipt, when replicated). */
static void mailer_on_done(queue_t *q, uint64_t seq)
{
	mailer_t *m = q->data;
	conn_t *c = peer_bus(&m->bus);
	if (!c)
		return;
	msgpack_packer *pk = conn_pack_begin(c);
	msgpack_pack_map(pk, 2);
	msg_pack_kv_str(pk, PEER_T, PEER_MSG_DELIVERED);
	msg_pack_str(pk, PEER_F_SEQS);
	msgpack_pack_array(pk, 1);
	msgpack_pack_uint64(pk, seq);
	conn_pack_end(c);
}

/* The details of one item, decoded. */
typedef struct {
	ledger_event_t ev;
	bool has_mail;
	char to[LEDGER_EMAIL_BYTES_MAX + 1];
	char code[MESSAGE_CODE_BYTES_MAX + 1];
	bool has_balance;
	int64_t balance;
} mailer_item_t;

static int64_t mailer_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void mailer_send_hello(mailer_t *m, conn_t *c)
{
	msgpack_packer *pk = peer_hello_begin(&m->bus, c, m->hwm, m->fresh);
	if (m->fresh)
		msg_pack_kv_bool(pk, PEER_F_FRESH, true);
	conn_pack_end(c);
}

static void mailer_send_ack(mailer_t *m, conn_t *c)
{
	msgpack_packer *pk = conn_pack_begin(c);
	msgpack_pack_map(pk, 2);
	msg_pack_kv_str(pk, PEER_T, PEER_MSG_ACK);
	msg_pack_kv_u64(pk, PEER_F_HWM, m->hwm);
	conn_pack_end(c);
}

/* Decodes the "mail" map of a live item whose event is already in it->ev. */
static int mailer_decode_mail(const char *p, size_t n, mailer_item_t *it)
{
	msgpack_zone zone;
	msgpack_object map;
	msgpack_zone_init(&zone, 1024);
	int rc = msg_decode_map(p, n, &zone, &map);
	if (rc == 0)
		rc = msg_get_strcpy(&map, PEER_F_TO, it->to, sizeof(it->to));
	if (rc == 0 && it->ev.type == LEDGER_EV_MONEY_WITHDRAWN)
		it->has_balance = msg_get_i64(&map, PEER_F_BALANCE, &it->balance) == 0;
	else if (rc == 0 && message_type_sends(it->ev.type))
		rc = msg_get_strcpy(&map, PEER_F_CODE, it->code, sizeof(it->code));
	msgpack_zone_destroy(&zone);
	it->has_mail = rc == 0;
	return rc < 0 ? -EINVAL : 0;
}

/* A sealed account_opened event's email, opened with DATA/keys: 0 or -errno. */
static int mailer_open_email(mailer_t *m, const ledger_event_t *ev,
                             char out[LEDGER_EMAIL_BYTES_MAX + 1])
{
	if (m->keys.fd < 0 && keystore_open(&m->keys, m->cfg->data_dir, false) < 0)
		return -ENOENT;
	int rc = pii_event_email(&m->keys, ev, out);
	if (rc == -ENOENT && keystore_refresh(&m->keys) == 0) /* a key added since */
		rc = pii_event_email(&m->keys, ev, out);
	return rc;
}

/* Learns (or, for an erasure, forgets) the address an item tells. 0 or -errno. */
static int mailer_learn(mailer_t *m, const mailer_item_t *it)
{
	int rc = 0;
	char email[LEDGER_EMAIL_BYTES_MAX + 1];
	if (it->ev.type == LEDGER_EV_ACCOUNT_ERASED)
		return spool_addr_forget(&m->spool, it->ev.account);
	if (it->ev.type == LEDGER_EV_ACCOUNT_OPENED && !it->has_mail &&
	    mailer_open_email(m, &it->ev, email) == 0 && message_address_check(email) == 0)
		rc = spool_addr_learn(&m->spool, it->ev.account, email);
	if (rc == 0 && it->has_mail && message_address_check(it->to) == 0)
		rc = spool_addr_learn(&m->spool, it->ev.account, it->to);
	return rc;
}

/* Fills in what a catch-up item lacks. -EINVAL when it cannot be mailed. */
static int mailer_complete(mailer_t *m, mailer_item_t *it)
{
	if (it->ev.has_balance) {
		it->has_balance = true;
		it->balance = it->ev.balance;
	}
	if (!it->has_mail && it->ev.type != LEDGER_EV_MONEY_WITHDRAWN)
		return -EINVAL; /* a verification code is never in the log */
	if (!it->has_mail) {
		const char *to = spool_addr_find(&m->spool, it->ev.account);
		if (!to)
			return -EINVAL;
		snprintf(it->to, sizeof(it->to), "%s", to);
	}
	return it->ev.type == LEDGER_EV_MONEY_WITHDRAWN && !it->has_balance ? -EINVAL : 0;
}

/* Composes the item's mail and writes it to queue/. 0, -EINVAL or -errno. */
static int mailer_spool(mailer_t *m, const mailer_item_t *it)
{
	static spool_entry_t e;
	message_t msg = {
		.from = m->cfg->from, .to = it->to, .public_url = m->cfg->public_url,
		.msgid_domain = m->msgid_domain, .type = it->ev.type, .seq = it->ev.seq,
		.ts_ms = it->ev.ts_ms, .account = it->ev.account, .code = it->code,
		.amount = it->ev.amount, .balance = it->balance,
	};
	memset(&e, 0, offsetof(spool_entry_t, msg));
	if (message_compose(&msg, e.msg, sizeof(e.msg), &e.msg_len) < 0)
		return -EINVAL;
	e.seq = it->ev.seq;
	e.type = it->ev.type;
	e.ts_ms = it->ev.ts_ms;
	e.accepted_ms = mailer_wall_ms();
	snprintf(e.to, sizeof(e.to), "%s", it->to);
	snprintf(e.subject, sizeof(e.subject), "%s", message_subject(it->ev.type));
	int rc = spool_put(&m->spool, &e);
	if (rc == 0 && !queue_has(&m->queue, e.seq))
		rc = queue_add(&m->queue, e.seq, e.accepted_ms);
	return rc;
}

/* An item whose mail the old primary delivered: its address is learnt,
 * nothing is sent; *hwm is advanced past it unless it returns -errno. */
static int mailer_item_sent(mailer_t *m, const mailer_item_t *it, uint64_t *hwm)
{
	int rc = mailer_learn(m, it);
	if (rc < 0)
		return rc;
	*hwm = it->ev.seq;
	return 0;
}

/* Handles one item; *hwm is advanced past it unless it returns -errno. */
static int mailer_item(mailer_t *m, const msgpack_object *item, uint64_t *hwm)
{
	static mailer_item_t it;
	const char *ev, *mail;
	size_t ev_len, mail_len;
	memset(&it, 0, sizeof(it));
	if (item->type != MSGPACK_OBJECT_MAP || msg_get_bin(item, PEER_F_EV, &ev, &ev_len) < 0 ||
	    event_decode_bytes(ev, ev_len, &it.ev) < 0) {
		diag_error("mail item without a valid event: skipped");
		return 0;
	}
	if (it.ev.seq <= *hwm)
		return 0;
	bool sent = false;
	msg_get_bool(item, PEER_F_SENT, &sent);
	if (sent || it.ev.type == LEDGER_EV_ACCOUNT_ERASED)
		return mailer_item_sent(m, &it, hwm); /* learn (forget), send nothing */
	int rc = 0;
	if (msg_get_bin(item, PEER_F_MAIL, &mail, &mail_len) == 0)
		rc = mailer_decode_mail(mail, mail_len, &it);
	if (rc == 0)
		rc = mailer_learn(m, &it);
	if (rc < 0 && rc != -EINVAL)
		return rc;
	if (rc == 0 && message_type_sends(it.ev.type))
		rc = mailer_complete(m, &it) == 0 ? mailer_spool(m, &it) : -EINVAL;
	if (rc == -EINVAL && it.ev.type == LEDGER_EV_ACCOUNT_OPENED && !it.has_mail)
		rc = 0; /* catch-up: only its address is wanted */
	if (rc == -EINVAL)
		diag_error("event %" PRIu64 ": mail cannot be composed (no address known, bad "
		          "address or details): skipped", it.ev.seq);
	else if (rc < 0)
		return rc;
	*hwm = it.ev.seq;
	return 0;
}

/* Makes the batch durable: the spool's directory, the address book, hwm. */
static int mailer_commit(mailer_t *m, uint64_t hwm)
{
	int rc = spool_sync(&m->spool);
	if (rc == 0 && (hwm != m->hwm || m->fresh))
		rc = maildir_hwm_write(m->hwm_path, hwm);
	if (rc < 0) {
		diag_error("making mail durable: %s; not acknowledged", strerror(-rc));
		return rc;
	}
	m->hwm = hwm;
	m->fresh = false;
	return 0;
}

static void mailer_on_resync_timer(uv_timer_t *t)
{
	mailer_t *m = t->data;
	if (m->resync)
		peer_drop(&m->bus, "a mail batch failed: the bus sends from the hwm again");
}

/* Stops taking batches from this session and has the bus send from m->hwm again. */
static void mailer_resync(mailer_t *m)
{
	diag_warn("mail after %" PRIu64 " not acknowledged: the bus session is dropped in %d ms "
	         "so that the bus sends it again", m->hwm, MAILER_RESYNC_MS);
	m->resync = true;
	uv_timer_start(&m->resync_timer, mailer_on_resync_timer, MAILER_RESYNC_MS, 0);
}

static void mailer_on_mail(conn_t *c, const msgpack_object *msg)
{
	mailer_t *m = c->data;
	const msgpack_object *items = msg_get(msg, PEER_F_ITEMS);
	if (m->resync)
		return; /* newer than the failed mail: the bus sends them again */
	if (!items || items->type != MSGPACK_OBJECT_ARRAY) {
		diag_warn("mail message without items: ignored");
		return;
	}
	uint64_t hwm = m->hwm, start;
	if (m->fresh && msg_get_u64(msg, PEER_F_HWM, &start) == 0 && start > hwm)
		hwm = start;
	int rc = 0;
	for (uint32_t i = 0; i < items->via.array.size && rc == 0; i++) {
		rc = mailer_item(m, &items->via.array.ptr[i], &hwm);
		if (rc < 0)
			diag_error("writing mail: %s; batch stopped at hwm %" PRIu64, strerror(-rc), hwm);
	}
	if (hwm != m->hwm || m->fresh) {
		int commit_rc = mailer_commit(m, hwm);
		rc = rc ? rc : commit_rc;
	}
	mailer_send_ack(m, c);
	if (rc < 0)
		mailer_resync(m);
}

static void mailer_write_figures(FILE *f, void *data)
{
	const mailer_t *m = data;
	const queue_t *q = &m->queue;
	figures_counter(f, "esbank_mailer_queued_total", "Mails taken into the queue.", q->queued);
	figures_counter(f, "esbank_mailer_sent_total", "Mails delivered.", q->sent);
	figures_counter(f, "esbank_mailer_retried_total", "Failed attempts to be retried.",
	                q->retried);
	figures_counter(f, "esbank_mailer_dead_total", "Mails given up (moved to dead/).", q->dead);
	figures_gauge(f, "esbank_mailer_queue", "Mails in the queue, not yet sent nor dead.",
	              (double)q->jobs);
	figures_gauge(f, "esbank_mailer_inflight", "Deliveries in flight.", (double)q->inflight);
	figures_gauge(f, "esbank_mailer_hwm", "The last event the mailer took.", (double)m->hwm);
}

/* {"t":"figures"}: the mailer's figures (common/figures.h). */
static void mailer_on_figures(conn_t *c, const msgpack_object *msg)
{
	(void)msg;
	if (figures_send(c, mailer_write_figures, c->data) < 0)
		diag_warn("out of memory writing the figures");
}

static const peer_handler_t mailer_handlers[] = {
	{ PEER_MSG_FIGURES, mailer_on_figures },
	{ PEER_MSG_MAIL, mailer_on_mail },
	{ NULL, NULL },
};

static void mailer_on_session(peer_server_t *bus, conn_t *c)
{
	mailer_t *m = bus->data;
	m->resync = false; /* a new session starts from the committed hwm */
	uv_timer_stop(&m->resync_timer);
	diag_info("bus connected; hello with hwm %" PRIu64 "%s", m->hwm,
	         m->fresh ? " (fresh)" : "");
	mailer_send_hello(m, c);
}

/* ---- stopping ---- */

static void mailer_finish(mailer_t *m)
{
	uv_timer_stop(&m->drain_timer);
	uv_close((uv_handle_t *)&m->drain_timer, NULL);
	uv_timer_stop(&m->resync_timer);
	uv_close((uv_handle_t *)&m->resync_timer, NULL);
	diag_info("stopped: %" PRIu64 " mails sent, %" PRIu64 " dead, %zu still queued",
	         m->queue.sent, m->queue.dead, m->queue.jobs);
	uv_stop(m->loop);
}

static void mailer_on_drained(queue_t *q)
{
	mailer_finish(q->data);
}

static void mailer_on_drain_timeout(uv_timer_t *t)
{
	mailer_t *m = t->data;
	diag_warn("%zu deliveries still in flight after %d ms: they are sent again on restart",
	         m->queue.inflight, MAILER_DRAIN_MS);
	mailer_finish(m);
}

static void mailer_on_signal(uv_signal_t *s, int signum)
{
	mailer_t *m = s->data;
	if (signum == SIGHUP) {
		int rc = queue_rescan(&m->queue);
		diag_info("SIGHUP: queue rescanned%s%s", rc < 0 ? ": " : "", rc < 0 ? strerror(-rc) : "");
		return;
	}
	diag_info("signal %d: stopping (%zu deliveries in flight)", signum, m->queue.inflight);
	peer_stop(&m->bus); /* removes mailer.sock */
	uv_close((uv_handle_t *)&m->sig_term, NULL);
	uv_close((uv_handle_t *)&m->sig_int, NULL);
	uv_close((uv_handle_t *)&m->sig_hup, NULL);
	uv_timer_start(&m->drain_timer, mailer_on_drain_timeout, MAILER_DRAIN_MS, 0);
	queue_stop(&m->queue, mailer_on_drained);
}

/* ---- setup ---- */

static int mailer_open_files(mailer_t *m)
{
	char *mail_dir = config_path(m->cfg->data_dir, "mail");
	char *outbox = mail_dir ? config_path(mail_dir, "outbox") : NULL;
	m->hwm_path = mail_dir ? config_path(mail_dir, "hwm") : NULL;
	int rc = outbox && m->hwm_path ? 0 : -ENOMEM;
	struct stat st;
	m->fresh = rc == 0 && stat(m->hwm_path, &st) < 0 && errno == ENOENT;
	if (rc == 0)
		rc = spool_open(&m->spool, mail_dir);
	if (rc == 0)
		rc = spool_addr_load(&m->spool);
	if (rc == 0)
		rc = maildir_hwm_read(m->hwm_path, &m->hwm);
	m->cfg->transport.outbox = outbox;
	if (rc == 0)
		rc = transport_init(&m->transport, m->loop, &m->cfg->transport);
	if (rc == 0)
		rc = queue_init(&m->queue, m->loop, &m->cfg->queue, &m->spool, &m->transport);
	if (rc < 0 && rc != -EINVAL)
		diag_error("%s: %s", mail_dir ? mail_dir : "mail", strerror(-rc));
	m->queue.data = m;
	m->queue.on_done = mailer_on_done;
	free(mail_dir);
	return rc;
}

static int mailer_check_config(const mailer_config_t *cfg)
{
	if (!message_header_safe(cfg->from) || strlen(cfg->from) > MESSAGE_FROM_BYTES_MAX) {
		diag_error("--from must be one line of at most %d bytes", MESSAGE_FROM_BYTES_MAX);
		return -EINVAL;
	}
	if (!message_header_safe(cfg->public_url) ||
	    strlen(cfg->public_url) > MESSAGE_URL_BYTES_MAX) {
		diag_error("--public-url must be one line of at most %d bytes",
		          MESSAGE_URL_BYTES_MAX);
		return -EINVAL;
	}
	const queue_config_t *q = &cfg->queue;
	if (q->retry_min_ms == 0 || q->retry_max_ms < q->retry_min_ms ||
	    q->inflight_max == 0 || q->inflight_max > MAILER_INFLIGHT_MAX) {
		diag_error("need 0 < --retry-min-ms <= --retry-max-ms and 1 <= --inflight <= %d",
		          MAILER_INFLIGHT_MAX);
		return -EINVAL;
	}
	return 0;
}

static int mailer_listen(mailer_t *m)
{
	uv_signal_t *sigs[] = { &m->sig_term, &m->sig_int, &m->sig_hup };
	int nums[] = { SIGTERM, SIGINT, SIGHUP };
	for (size_t i = 0; i < 3; i++) {
		uv_signal_init(m->loop, sigs[i]);
		sigs[i]->data = m;
		uv_signal_start(sigs[i], mailer_on_signal, nums[i]);
	}
	uv_timer_init(m->loop, &m->drain_timer);
	m->drain_timer.data = m;
	uv_timer_init(m->loop, &m->resync_timer);
	m->resync_timer.data = m;
	m->sock_path = config_path(m->cfg->run_dir, "mailer.sock");
	int rc = m->sock_path ? config_mkdirs(m->cfg->run_dir, 0700) : -ENOMEM;
	m->bus.data = m;
	m->bus.handlers = mailer_handlers;
	m->bus.on_open = mailer_on_session;
	if (rc == 0)
		rc = peer_listen(&m->bus, m->loop, PEER_ROLE_MAILER, m->sock_path);
	if (rc < 0)
		diag_error("%s: %s", m->sock_path ? m->sock_path : "mailer.sock", uv_strerror(rc));
	return rc;
}

int mailer_run(mailer_config_t *cfg)
{
	static mailer_t m;
	m.cfg = cfg;
	m.loop = uv_default_loop();
	m.transport.md.new_fd = -1;
	m.spool.dir_fd = m.spool.queue_fd = m.spool.dead_fd = m.spool.addr_fd = -1;
	m.keys.fd = -1;
	if (mailer_check_config(cfg) < 0)
		return EXIT_USAGE;
	message_msgid_domain(cfg->from, m.msgid_domain, sizeof(m.msgid_domain));
	int code = EXIT_TEMPORARY, rc = mailer_open_files(&m);
	if (rc == -EINVAL)
		code = EXIT_USAGE;
	if (rc < 0 || mailer_listen(&m) < 0)
		goto out;
	diag_info("listening on %s; transport %s; hwm %" PRIu64 "%s; %zu mails queued",
	         m.sock_path, transport_name(&m.transport), m.hwm, m.fresh ? " (fresh)" : "",
	         m.queue.jobs);
	uv_run(m.loop, UV_RUN_DEFAULT);
	code = 0;
out:
	transport_close(&m.transport);
	queue_free(&m.queue);
	spool_close(&m.spool);
	keystore_close(&m.keys);
	free((char *)cfg->transport.outbox);
	free(m.sock_path);
	free(m.hwm_path);
	return code;
}
