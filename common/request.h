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

#define REQUEST_EVENTS_LIMIT_DEFAULT PROTO_EVENTS_LIMIT_DEFAULT
#define REQUEST_EVENTS_LIMIT_MAX PROTO_EVENTS_LIMIT_MAX
#define REQUEST_CODE_BYTES_MAX 256        /* longer "code" is bad_request */
#define REQUEST_YEAR_MAX 9999             /* sum_transactions: year 1..9999 */
#define REQUEST_DAYS_MAX 1000000          /* inactive_users: larger counts as this */

/*
 * Fully decodes a request map into *cmd (strings point into map's memory).
 * Returns PROTO_OK, PROTO_E_BAD_REQUEST or PROTO_E_UNKNOWN_OP; *why (may be
 * NULL) gets a short static explanation for the error message. Also computes
 * cmd->fp, the fingerprint of the op and its arguments (the password
 * excluded) used to tell a retry from a key conflict.
 */
proto_err_t request_decode(const msgpack_object *map, ledger_cmd_t *cmd, const char **why);

#endif
