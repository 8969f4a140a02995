/*
 * protocol.h - the names of the wire: the client protocol's ops and errors
 * (PROTOCOL.md, docs/protocol.md) with their wire strings and texts, the
 * reply envelopes every program packs, and the peer protocol's message
 * types and field names (docs/peers.md).
 *
 * The lowest module of the core: it depends on msg.h only. The ledger
 * (rules), the request decoder and the bus all use it; it uses none of them.
 *
 * A client reply is one msgpack map:
 *   success  {"id": uint, "ok": true, ...the op's fields}
 *   error    {"id": uint, "ok": false, "error": str, "message": str}
 * where "error" is one of proto_err_name()'s strings and "message" is at most
 * PROTO_MESSAGE_BYTES_MAX bytes (a longer one is cut).
 */
#ifndef ESBANK_PROTOCOL_H
#define ESBANK_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#define PROTO_MESSAGE_BYTES_MAX 256

/* Error codes; proto_err_name() gives the protocol's string for each. */
typedef enum {
	PROTO_OK = 0,
	PROTO_E_BAD_REQUEST,
	PROTO_E_UNKNOWN_OP,
	PROTO_E_NOT_FOUND,
	PROTO_E_ALREADY_EXISTS,
	PROTO_E_ALREADY_VERIFIED,
	PROTO_E_WRONG_CODE,
	PROTO_E_NOT_VERIFIED,
	PROTO_E_INSUFFICIENT_FUNDS,
	PROTO_E_INVALID_AMOUNT,
	PROTO_E_SAME_ACCOUNT,
	PROTO_E_KEY_CONFLICT,
	PROTO_E_AUTH_FAILED,
	PROTO_E_UNAVAILABLE,
	PROTO_E_OVERLOADED,
	PROTO_E_INTERNAL,
	PROTO_DUPLICATE, /* not an error: a keyed command seen before */
	PROTO_E_NOT_PRIMARY, /* a command on a standby or fenced group */
	PROTO_E_NOT_STANDBY, /* promote on a group that is not a standby */
	PROTO_E_BALANCE_NOT_ZERO, /* erase_account of an account with money, no force */
	PROTO_E_ALREADY_ERASED,   /* erase_account of an erased account */
} proto_err_t;

/* Ops; the numbers are stored in snapshots (the key table): never renumber. */
typedef enum {
	PROTO_OP_NONE = 0,
	/* commands */
	PROTO_OP_OPEN_ACCOUNT,
	PROTO_OP_VERIFY_ACCOUNT,
	PROTO_OP_REISSUE_CODE,
	PROTO_OP_TRANSFER,
	PROTO_OP_WITHDRAW,
	/* queries answered from the state */
	PROTO_OP_GET_ACCOUNT,
	PROTO_OP_AUTHENTICATE,
	PROTO_OP_SUM_TRANSACTIONS,
	PROTO_OP_INACTIVE_USERS,
	/* served by the bus or the logger, never by the ledger */
	PROTO_OP_EVENTS,
	PROTO_OP_SUBSCRIBE,
	PROTO_OP_STATUS,
	PROTO_OP_PING,
	PROTO_OP_PROMOTE, /* served by the bus and the replicator: a standby takes over */
	/* a command again: many transfers in one request (request.h) */
	PROTO_OP_TRANSFERS,
	/* served by the bus: every program's figures (common/figures.h) */
	PROTO_OP_METRICS,
	/* served by the logger, from its account index (docs/protocol.md) */
	PROTO_OP_STATEMENT,
	/* a command: destroy an account's personal data (docs/privacy.md) */
	PROTO_OP_ERASE_ACCOUNT,
} proto_op_t;

/* The protocol's error string ("not_found", ...) for an error code. */
const char *proto_err_name(proto_err_t e);

/* A human message for an error code, for replies that have none better. */
const char *proto_err_text(proto_err_t e);

/* Maps an op name to its code; PROTO_OP_NONE when unknown. */
proto_op_t proto_op_parse(const char *s, size_t n);

/* The op's wire name ("transfer", ...); NULL for PROTO_OP_NONE or out of range. */
const char *proto_op_name(proto_op_t op);

/* True for the ops that change the state (open_account .. withdraw, transfers,
 * erase_account). */
bool proto_op_is_command(proto_op_t op);

/*
 * Reads "id" and "op" of a request map only. Returns PROTO_OK,
 * PROTO_E_BAD_REQUEST (no id or no op, or wrong types; *id is 0 when it could
 * not be read) or PROTO_E_UNKNOWN_OP. Used by the bus to route without full
 * decoding.
 */
proto_err_t proto_peek(const msgpack_object *map, uint64_t *id, proto_op_t *op);

/*
 * Packs a whole error reply map {"id","ok":false,"error","message"} into pk;
 * message NULL means proto_err_text(err). err is an error (not PROTO_OK or
 * PROTO_DUPLICATE).
 */
/* The fields of "events" and "subscribe", the two ops the bus serves itself
 * (from the log, without the ledger): from (default: 1 for events, the next
 * new event for subscribe) and, for events, limit (default
 * PROTO_EVENTS_LIMIT_DEFAULT, larger values taken as PROTO_EVENTS_LIMIT_MAX). */
#define PROTO_EVENTS_LIMIT_DEFAULT 100
#define PROTO_EVENTS_LIMIT_MAX 10000

typedef struct {
	uint64_t from_seq;
	bool has_from;
	uint64_t limit; /* events only */
} proto_read_args_t;

/* Decodes the fields of an events (op PROTO_OP_EVENTS) or subscribe request
 * map into *out. PROTO_OK, or PROTO_E_BAD_REQUEST with *why (static text)
 * naming the field. */
proto_err_t proto_decode_read_args(const msgpack_object *map, proto_op_t op,
                                   proto_read_args_t *out, const char **why);

/* The fields of "statement" (docs/protocol.md), served by the logger from
 * its account index: account (a string; account_valid false when it is not
 * 16 digits with a first digit not zero: not_found), since / until (ms,
 * since inclusive, until exclusive), after_seq, limit (default and largest
 * PROTO_STATEMENT_LIMIT_MAX; 0 is bad_request). */
#define PROTO_STATEMENT_LIMIT_MAX 10000

typedef struct {
	uint64_t account;
	bool account_valid;
	int64_t since_ms, until_ms; /* INT64_MIN / INT64_MAX when absent */
	bool has_since, has_until;
	uint64_t after_seq;
	uint64_t limit;
} proto_statement_args_t;

/* Decodes a statement request map into *out: PROTO_OK, or
 * PROTO_E_BAD_REQUEST with *why (static text) naming the field. */
proto_err_t proto_decode_statement_args(const msgpack_object *map, proto_statement_args_t *out,
                                        const char **why);

void proto_pack_error(msgpack_packer *pk, uint64_t id, proto_err_t err, const char *message);

/*
 * Packs the start of a success reply: a map header of 2 + extra entries,
 * then "id" and "ok": true. The caller packs the extra key/value pairs.
 */
void proto_pack_ok(msgpack_packer *pk, uint64_t id, uint32_t extra);

/*
 * The peer protocol (docs/peers.md): every peer message is a map whose
 * PEER_T field names its type. Message types:
 */
#define PEER_T "t"
#define PEER_MSG_HELLO "hello"       /* bus -> peer, then peer -> bus */
#define PEER_MSG_REFUSED "refused"   /* peer -> any: connection refused */
#define PEER_MSG_REQ "req"           /* bus -> resolver: client requests */
#define PEER_MSG_RES "res"           /* resolver -> bus: resolved items */
#define PEER_MSG_REPLAY "replay"     /* bus -> resolver: durable events */
#define PEER_MSG_REPLAYED "replayed" /* resolver -> bus: replay done */
#define PEER_MSG_RESET "reset"       /* bus -> resolver, snapshotter */
#define PEER_MSG_LOAD "load"         /* bus -> resolver: load a snapshot */
#define PEER_MSG_LOADED "loaded"     /* resolver -> bus: snapshot loaded */
#define PEER_MSG_APPEND "append"     /* bus -> logger: events to append */
#define PEER_MSG_DURABLE "durable"   /* logger -> bus: fsync'd up to seq */
#define PEER_MSG_READ "read"         /* bus <-> logger: read durable events */
#define PEER_MSG_FAULT "fault"       /* logger -> bus: the log cannot be written */
#define PEER_MSG_EVENTS "events"     /* bus -> snapshotter: durable events */
#define PEER_MSG_ACK "ack"           /* snapshotter, mailer -> bus */
#define PEER_MSG_MAIL "mail"         /* bus -> mailer: events that send mail */
/* bus <-> replicator (docs/peers.md; "append" and "fault" as above) */
#define PEER_MSG_REPLICATED "replicated" /* replicator -> bus: held by a quorum */
#define PEER_MSG_FENCED "fenced"         /* replicator -> bus: another primary wrote */
#define PEER_MSG_FOLLOW "follow"         /* replicator -> bus: events read from the stream */
#define PEER_MSG_FROM "from"             /* bus -> replicator: follow from seq */
#define PEER_MSG_PROMOTE "promote"       /* bus -> replicator: take over */
#define PEER_MSG_PROMOTED "promoted"     /* replicator -> bus: takeover record written */
#define PEER_MSG_PRIMARY "primary"       /* replicator -> bus: the primary's heartbeat */
#define PEER_MSG_DELIVERED "delivered"   /* mailer -> bus: mails delivered */
#define PEER_MSG_RECEIPTS "receipts"     /* bus <-> replicator: mails delivered */
#define PEER_MSG_FIGURES "figures"       /* bus <-> peers: a program's metrics (common/figures.h) */
#define PEER_MSG_STATEMENT "statement"   /* bus <-> logger: an account's statement */

/* Field names of peer messages (which message carries which: docs/peers.md). */
#define PEER_F_ROLE "role"
#define PEER_F_PID "pid"
#define PEER_F_SESSION "session"
#define PEER_F_HWM "hwm"
#define PEER_F_HEAD "head"
#define PEER_F_END "end"         /* logger hello: the last seq on disk, still being checked */
#define PEER_F_SNAPSHOT "snapshot"
#define PEER_F_FRESH "fresh"
#define PEER_F_MESSAGE "message"
#define PEER_F_ITEMS "items"
#define PEER_F_CID "c"           /* the bus's correlation id */
#define PEER_F_REQUEST "r"       /* req item: the request map, as bin */
#define PEER_F_WAIT_SEQ "w"      /* res item: reply once durable >= w */
#define PEER_F_REPLY "reply"     /* res item: the reply map, as bin */
#define PEER_F_EV "ev"           /* res / mail item: the event, as bin */
#define PEER_F_EVS "evs"         /* res item: a bulk request's events, each as bin */
#define PEER_F_MAIL "mail"       /* res / mail item: the mail details, as bin */
#define PEER_F_EVENTS "events"   /* list of events, each as bin */
#define PEER_F_FIRST "first"
#define PEER_F_LAST "last"
#define PEER_F_PREV "prev"
#define PEER_F_CHAIN "chain"
#define PEER_F_MAX "max"
#define PEER_F_FROM "from"
#define PEER_F_LIMIT "limit"
#define PEER_F_BYTES "bytes"
#define PEER_F_SEQ "seq"
#define PEER_F_SEQS "seqs"           /* delivered, receipts: the mails' event seqs */
#define PEER_F_TEXT "text"           /* figures: Prometheus text, as bin */
#define PEER_F_SENT "sent"           /* mail item: the old primary delivered it */
/* fields of the statement messages (logger/statement.c) */
#define PEER_F_SINCE "since"
#define PEER_F_UNTIL "until"
#define PEER_F_AFTER_SEQ "after_seq"
#define PEER_F_N "n"                 /* statement: key/value pairs packed in body */
#define PEER_F_BODY "body"           /* statement: the reply's pairs, as bin */
/* fields of the replicator's messages */
#define PEER_F_MODE "mode"             /* hello: PEER_MODE_PRIMARY or PEER_MODE_STANDBY */
#define PEER_F_STREAM "stream"         /* hello: the stream's name */
#define PEER_F_STREAM_SEQ "stream_seq" /* the stream's last sequence */
#define PEER_F_REPLICAS "replicas"     /* hello: the stream's replicas */
#define PEER_F_NODE "node"             /* hello, primary: a group's name */
#define PEER_F_PRIMARY "primary"       /* fenced: the other primary's name or nil */
#define PEER_F_ERROR "error"           /* promoted: "not_standby" or "unavailable" */
#define PEER_F_FAULT "fault"           /* hello: why a primary cannot publish now */
/* fields of the mail details map */
#define PEER_F_TO "to"
#define PEER_F_ACCOUNT "account"
#define PEER_F_CODE "code"
#define PEER_F_BALANCE "balance"

/* The roles a hello names. */
#define PEER_ROLE_BUS "bus"
#define PEER_ROLE_RESOLVER "resolver"
#define PEER_ROLE_LOGGER "logger"
#define PEER_ROLE_SNAPSHOTTER "snapshotter"
#define PEER_ROLE_MAILER "mailer"
#define PEER_ROLE_REPLICATOR "replicator"

/* The replicator's modes (its hello's PEER_F_MODE). */
#define PEER_MODE_PRIMARY "primary"
#define PEER_MODE_STANDBY "standby"

#endif
