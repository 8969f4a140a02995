/*
 * request.h - decoding client requests (PROTOCOL.md) into ledger_cmd_t and
 * encoding the replies every program shares.
 *
 * A request is a msgpack map with "op" (string), "id" (unsigned integer) and
 * the op's fields. request_decode() performs every bad_request check of
 * PROTOCOL.md for the op (missing field, wrong type, invalid email or
 * password, key not 1..64 bytes, amount not an integer) and nothing else:
 * invalid_amount, not_found and the other rules are the ledger's.
 */
#ifndef ESBANK_REQUEST_H
#define ESBANK_REQUEST_H

#include "ledger.h"
#include "msg.h"

#include <msgpack.h>

#define REQUEST_EVENTS_LIMIT_DEFAULT 100
#define REQUEST_EVENTS_LIMIT_MAX 10000
#define REQUEST_MESSAGE_BYTES_MAX 256
#define REQUEST_CODE_BYTES_MAX 256        /* longer "code" is bad_request */
#define REQUEST_YEAR_MAX 9999             /* sum_transactions: year 1..9999 */
#define REQUEST_DAYS_MAX 1000000          /* inactive_users: larger counts as this */

/* Maps an op name to its code; LEDGER_OP_NONE when unknown. */
ledger_op_t request_op_parse(const char *s, size_t n);
const char *request_op_name(ledger_op_t op);
bool request_op_is_command(ledger_op_t op);

/*
 * Reads "id" and "op" only. Returns LEDGER_OK, LEDGER_E_BAD_REQUEST (no id or
 * no op, or wrong types; *id is 0 when it could not be read) or
 * LEDGER_E_UNKNOWN_OP. Used by the bus to route without full decoding.
 */
ledger_err_t request_peek(const msgpack_object *map, uint64_t *id, ledger_op_t *op);

/*
 * Fully decodes a request map into *cmd (strings point into map's memory).
 * Returns LEDGER_OK, LEDGER_E_BAD_REQUEST or LEDGER_E_UNKNOWN_OP; *why (may be
 * NULL) gets a short static explanation for the error message. Also computes
 * cmd->fp, the fingerprint of the op and its arguments (the password
 * excluded) used to tell a retry from a key conflict.
 */
ledger_err_t request_decode(const msgpack_object *map, ledger_cmd_t *cmd, const char **why);

/* Validates an email (PROTOCOL.md) and writes it lower-cased into out. */
bool request_email_valid(const char *s, size_t n, char out[LEDGER_EMAIL_BYTES_MAX + 1]);

/* A human message for an error code, for replies that have none better. */
const char *request_error_text(ledger_err_t err);

/*
 * Packs a whole error reply map {"id","ok":false,"error","message"} into pk.
 */
void request_pack_error(msgpack_packer *pk, uint64_t id, ledger_err_t err, const char *message);

/*
 * Packs the start of a success reply: a map header of 2 + extra entries,
 * then "id" and "ok": true. The caller packs the extra key/value pairs.
 */
void request_pack_ok(msgpack_packer *pk, uint64_t id, uint32_t extra);

#endif
