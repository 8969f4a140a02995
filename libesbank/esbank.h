/*
 * esbank.h - libesbank, the C client library of esbank (docs/libesbank.md).
 *
 * It speaks the client protocol (docs/protocol.md, version 1) on RUN/bus.sock:
 * the framing, the request maps and the replies, so that a program need not
 * know msgpack. Two ways to call:
 *
 *   blocking   esbank_connect(), then one function per op (esbank_transfer(),
 *              esbank_get_account(), ...), each waiting for its reply;
 *              esbank_subscribe() runs a subscription; esbank_close().
 *   async      esbank_async_connect() on the caller's libuv loop, then
 *              esbank_async_call() with a request built by esbank_req_*():
 *              any number in flight on one connection, each reply handed to
 *              its callback (matched by id); esbank_async_subscribe().
 *
 * Every function returns 0 or a negative errno (a reply that says "ok":
 * false is not a failure of the call: see esbank_reply_t.ok). Strings passed
 * in are copied before the call returns. Neither kind of connection may be
 * used from two threads at once.
 *
 * Replies: esbank_reply_t holds the envelope (ok, error, message) and the
 * fields most ops return (seq, balance, account) as plain C values; any
 * other field is read with esbank_reply_get_int/str/bool(), or the whole
 * reply as a JSON text with esbank_reply_json(). Events (events,
 * subscribe) are read the same way: esbank_reply_json(), or an event handed
 * to a subscription callback as an esbank_reply_t over the event map.
 */
#ifndef ESBANK_H
#define ESBANK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ESBANK_PROTOCOL_VERSION 1
#define ESBANK_ERROR_BYTES_MAX 31     /* longest error code kept */
#define ESBANK_MESSAGE_BYTES_MAX 256  /* an error reply's message (protocol limit) */
#define ESBANK_ACCOUNT_BYTES 16       /* an account number's digits */
#define ESBANK_WHY_BYTES_MAX 512      /* a connect explanation, NUL included */
#define ESBANK_REQUEST_FIELDS_MAX 5   /* fields of the largest request */
#define ESBANK_ASYNC_INFLIGHT_MAX 65536 /* calls in flight on one async link */
#define ESBANK_ASYNC_QUEUED_BYTES_MAX (8u << 20) /* bytes waiting to be written */
#define ESBANK_ASYNC_TICK_MS 250      /* how often call deadlines are checked */

/*
 * One reply (or one event). The scalar fields are copies: seq is 0 and
 * has_balance false and account "" when the reply has no such field; error
 * and message are "" when ok. Free with esbank_reply_free() (a blocking
 * call's reply); a reply handed to a callback belongs to the library and
 * lives until the callback returns.
 */
typedef struct {
	uint64_t id;
	bool ok;
	char error[ESBANK_ERROR_BYTES_MAX + 1];
	char message[ESBANK_MESSAGE_BYTES_MAX + 1];
	uint64_t seq;
	bool has_balance;
	int64_t balance;
	char account[ESBANK_ACCOUNT_BYTES + 1];
	/* private: the reply's map as received */
	void *priv_raw;
	size_t priv_raw_bytes;
} esbank_reply_t;

/* Frees what the reply holds (not the struct); safe on a zeroed reply. */
void esbank_reply_free(esbank_reply_t *reply);

/*
 * Reads the top-level field key of the reply. Return 0, -ENOENT when it is
 * absent (or nil), -EINVAL when it has another type; _str copies at most
 * size - 1 bytes and a NUL into buf (-ENOSPC when it does not fit).
 */
int esbank_reply_get_int(const esbank_reply_t *reply, const char *key, int64_t *value);
int esbank_reply_get_str(const esbank_reply_t *reply, const char *key, char *buf, size_t size);
int esbank_reply_get_bool(const esbank_reply_t *reply, const char *key, bool *value);

/*
 * The whole reply (or event) as one line of JSON (bin values as hex
 * strings). Returns a string the caller frees with free(), or NULL when out
 * of memory.
 */
char *esbank_reply_json(const esbank_reply_t *reply);

/*
 * A request, built by one esbank_req_*() function and sent with
 * esbank_call() or esbank_async_call(). It points at the caller's strings
 * until sent. key (commands) is an idempotency key or NULL.
 */
typedef struct {
	const char *name;
	const char *str; /* NULL: an integer field (or a boolean one) */
	int64_t num;
	size_t len;      /* str's bytes (it may hold NULs); 0: strlen(str); with str
	                  * NULL, ESBANK_FIELD_BOOL: num (0 or 1) is sent as a boolean,
	                  * ESBANK_FIELD_TRANSFERS: items, num of them, as an array */
	const void *items;
} esbank_field_t;

#define ESBANK_FIELD_BOOL 1
#define ESBANK_FIELD_TRANSFERS 2

/* One transfer of a bulk "transfers" request; key may be NULL. */
typedef struct {
	const char *from;
	const char *to;
	int64_t amount_cents;
	const char *key;
} esbank_transfer_t;

#define ESBANK_TRANSFERS_MAX 8192 /* transfers in one request (protocol limit) */

typedef struct {
	const char *op;
	unsigned nfields;
	esbank_field_t fields[ESBANK_REQUEST_FIELDS_MAX];
} esbank_request_t;

void esbank_req_open_account(esbank_request_t *r, const char *email, const char *password,
			     const char *key);
void esbank_req_verify_account(esbank_request_t *r, const char *account, const char *code,
			       const char *key);
void esbank_req_reissue_code(esbank_request_t *r, const char *account, const char *key);
void esbank_req_transfer(esbank_request_t *r, const char *from, const char *to,
			 int64_t amount_cents, const char *key);
void esbank_req_withdraw(esbank_request_t *r, const char *account, int64_t amount_cents,
			 const char *key);
void esbank_req_get_account(esbank_request_t *r, const char *account);
void esbank_req_authenticate(esbank_request_t *r, const char *account, const char *password);
/*
 * Bulk transfers: items[0..n) (1 to ESBANK_TRANSFERS_MAX; not copied: they
 * must live until the request is sent), all or none when atomic. The reply's
 * "results" array (one per item, in order) is read with esbank_reply_json();
 * an atomic failure is an error reply with "index".
 */
void esbank_req_transfers(esbank_request_t *r, const esbank_transfer_t *items, size_t n,
			  bool atomic);
/*
 * The raw entry point, for a program that builds a request itself (any op,
 * or strings given with their length): esbank_req_start() empties r and
 * names its op; each esbank_req_add_*() appends one field (at most
 * ESBANK_REQUEST_FIELDS_MAX; name and s are not copied). _str takes len
 * bytes of s (which may hold NULs; 0 means strlen(s)).
 */
void esbank_req_start(esbank_request_t *r, const char *op);
void esbank_req_add_str(esbank_request_t *r, const char *name, const char *s, size_t len);
void esbank_req_add_int(esbank_request_t *r, const char *name, int64_t value);
void esbank_req_add_bool(esbank_request_t *r, const char *name, bool value);

/* year, month, day: 0 leaves the field out (all time, a year, a month). */
void esbank_req_sum_transactions(esbank_request_t *r, int year, int month, int day);
/* days < 0 leaves the field out (the server's default, 30). */
void esbank_req_inactive_users(esbank_request_t *r, int days);
/* from 0: from seq 1; limit 0: the server's default (100). */
void esbank_req_events(esbank_request_t *r, uint64_t from, uint64_t limit);
/* An account's statement: since_ms / until_ms 0 leave the bound out (since
 * inclusive, until exclusive); after_seq 0: from the period's start; limit
 * 0: the server's default (10,000). Read "entries" with esbank_reply_json(). */
void esbank_req_statement(esbank_request_t *r, const char *account, int64_t since_ms,
			  int64_t until_ms, uint64_t after_seq, uint64_t limit);
void esbank_req_status(esbank_request_t *r);
void esbank_req_ping(esbank_request_t *r);
void esbank_req_promote(esbank_request_t *r);

/* ---- blocking ---- */

typedef struct esbank esbank_t;

/*
 * Connects to where: a run directory (its bus.sock) or a socket's path, and
 * checks with a ping that the bus serves this user. Returns 0 and *out, or
 * -ENOENT (no socket: no group there), -EACCES (the directory or socket is
 * not this user's), -ECONNREFUSED (a stale socket), -EPERM (the bus closed
 * the connection: this user is not admitted, SO_PEERCRED), -ETIMEDOUT,
 * -ENAMETOOLONG, -ENOMEM. why (may be NULL) receives one line saying what
 * went wrong and where, e.g. "no esbank group at RUN/bus.sock: bus.sock not
 * found ..."; ESBANK_WHY_BYTES_MAX bytes are enough.
 */
int esbank_connect(const char *where, esbank_t **out, char *why, size_t why_size);

/* Closes the connection and frees it; NULL is a no-op. */
void esbank_close(esbank_t *c);

/* Sets the time a blocking call waits for its reply (default 60000; -1: forever). */
void esbank_set_timeout(esbank_t *c, int timeout_ms);

/*
 * Sends req and waits for its reply into *reply (free it with
 * esbank_reply_free()). Returns 0 when a reply came (ok or not), or
 * -ETIMEDOUT, -ECONNRESET (the server closed the link), -EMSGSIZE, -EBADMSG,
 * -EPROTO, -EINTR, -ENOMEM: then a command may or may not have taken
 * effect (retry with the same key). *reply is zeroed on failure.
 */
int esbank_call(esbank_t *c, const esbank_request_t *req, esbank_reply_t *reply);

/* One blocking call per op: esbank_req_<op>() then esbank_call(). */
int esbank_open_account(esbank_t *c, const char *email, const char *password,
			const char *key, esbank_reply_t *reply);
int esbank_verify_account(esbank_t *c, const char *account, const char *code,
			  const char *key, esbank_reply_t *reply);
int esbank_reissue_code(esbank_t *c, const char *account, const char *key,
			esbank_reply_t *reply);
int esbank_transfer(esbank_t *c, const char *from, const char *to, int64_t amount_cents,
		    const char *key, esbank_reply_t *reply);
int esbank_withdraw(esbank_t *c, const char *account, int64_t amount_cents, const char *key,
		    esbank_reply_t *reply);
int esbank_get_account(esbank_t *c, const char *account, esbank_reply_t *reply);
int esbank_authenticate(esbank_t *c, const char *account, const char *password,
			esbank_reply_t *reply);
int esbank_sum_transactions(esbank_t *c, int year, int month, int day, esbank_reply_t *reply);
int esbank_inactive_users(esbank_t *c, int days, esbank_reply_t *reply);
int esbank_events(esbank_t *c, uint64_t from, uint64_t limit, esbank_reply_t *reply);
int esbank_statement(esbank_t *c, const char *account, int64_t since_ms, int64_t until_ms,
		     uint64_t after_seq, uint64_t limit, esbank_reply_t *reply);
int esbank_status(esbank_t *c, esbank_reply_t *reply);
int esbank_ping(esbank_t *c, esbank_reply_t *reply);
int esbank_promote(esbank_t *c, esbank_reply_t *reply);

/*
 * Called for each event of a blocking subscription; the event lives until
 * the callback returns. A non-zero return ends the subscription.
 */
typedef int (*esbank_event_fn)(const esbank_reply_t *event, void *arg);

/*
 * Subscribes from seq from (0: the next event that becomes durable) and
 * calls event_fn for every event until it returns non-zero (then returns
 * that value; the connection should be closed: the subscription lasts as
 * long as it). A refused subscribe returns -EPROTO with *refusal set (free
 * it); refusal may be NULL. Other failures as esbank_call(); none waits for
 * a reply's timeout once the subscription is confirmed.
 */
int esbank_subscribe(esbank_t *c, uint64_t from, esbank_event_fn event_fn, void *arg,
		     esbank_reply_t *refusal);

/* ---- async, on the caller's libuv loop ---- */

typedef struct esbank_async esbank_async_t;

/*
 * A call's outcome: status 0 with the reply (ok or not), or a negative errno
 * with reply NULL: -ECONNRESET (the link dropped: a command's fate is
 * unknown), -ECANCELED (esbank_async_close()), -EBADMSG/-EMSGSIZE (the
 * server broke the protocol). Each call's callback runs exactly once.
 */
typedef void (*esbank_reply_cb)(esbank_async_t *a, int status, const esbank_reply_t *reply,
				void *arg);
/* An event of an async subscription. */
typedef void (*esbank_event_cb)(esbank_async_t *a, const esbank_reply_t *event, void *arg);

/*
 * Connects as esbank_connect() does (blocking for that one ping) and
 * attaches the link to loop. Returns 0 and *out, or the errors and why of
 * esbank_connect().
 */
int esbank_async_connect(uv_loop_t *loop, const char *where, esbank_async_t **out,
			 char *why, size_t why_size);

/*
 * Attaches fd, a stream socket already connected to a bus (or a test's
 * fake bus), to loop without a ping; the link owns fd from then on, even
 * on failure. Returns 0 and *out, -ENOMEM, or a libuv error.
 */
int esbank_async_attach(uv_loop_t *loop, int fd, esbank_async_t **out);

/*
 * Called once when the link drops (the server closed it, a read failed, a
 * frame broke the protocol), after every call in flight got its status;
 * not after esbank_async_close(). status is -ECONNRESET, -EBADMSG,
 * -EMSGSIZE or a libuv error. The link takes no more calls: close it (the
 * callback may) and connect again.
 */
typedef void (*esbank_lost_cb)(esbank_async_t *a, int status, void *arg);
void esbank_async_on_lost(esbank_async_t *a, esbank_lost_cb cb, void *arg);

/*
 * Queues req on the link (written in order, without waiting for replies)
 * and calls cb with its reply. Returns 0, -ENOTCONN after the link dropped
 * or was closed, -ENOBUFS with ESBANK_ASYNC_INFLIGHT_MAX calls in flight
 * or ESBANK_ASYNC_QUEUED_BYTES_MAX bytes not yet written, -EMSGSIZE,
 * -ENOMEM, or a libuv error; cb is then not called.
 */
int esbank_async_call(esbank_async_t *a, const esbank_request_t *req, esbank_reply_cb cb,
		      void *arg);

/*
 * As esbank_async_call(), with a deadline and the call's id: when no reply
 * came within timeout_ms (-1: none), cb gets -ETIMEDOUT (checked every
 * ESBANK_ASYNC_TICK_MS) and a late reply is dropped. *id (may be NULL)
 * names the call for esbank_async_cancel().
 */
int esbank_async_call_timed(esbank_async_t *a, const esbank_request_t *req, int timeout_ms,
			    esbank_reply_cb cb, void *arg, uint64_t *id);

/*
 * Forgets the call id: its callback will not run and its reply, if one
 * comes, is dropped (a command may still take effect). No-op for an id not
 * in flight.
 */
void esbank_async_cancel(esbank_async_t *a, uint64_t id);

/*
 * Subscribes from seq from (0: the next durable event): cb gets the
 * subscription's reply, then event_cb every event while the link lasts.
 * Returns as esbank_async_call().
 */
int esbank_async_subscribe(esbank_async_t *a, uint64_t from, esbank_event_cb event_cb,
			   esbank_reply_cb cb, void *arg);

/* Calls in flight (replies not yet handed out), subscriptions not counted. */
size_t esbank_async_inflight(const esbank_async_t *a);

/*
 * Closes the link: every call still in flight gets -ECANCELED, then the
 * memory is freed once libuv has closed the handle (the loop must run).
 * May be called from a callback.
 */
void esbank_async_close(esbank_async_t *a);

#ifdef __cplusplus
}
#endif

#endif
