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

/*
 * The "transfers" op (docs/protocol.md): {"op":"transfers","id":N,
 * "transfers":[{"from","to","amount","key"?}, ...],"atomic":bool?}. At most
 * REQUEST_TRANSFERS_MAX items; an empty list, a longer one, a non-boolean
 * "atomic" or any item that a single "transfer" would answer bad_request for
 * is bad_request for the whole request (*bad_index, when not NULL, gets the
 * item's index, or UINT32_MAX when the request itself is at fault).
 */
#define REQUEST_TRANSFERS_MAX LEDGER_BATCH_MAX

typedef struct {
	uint64_t id;
	bool atomic;
	uint32_t count;
	ledger_cmd_t *items; /* count entries, malloc'd: request_transfers_free() */
} request_transfers_t;

/*
 * Decodes a "transfers" request map into *out: each item becomes a
 * ledger_cmd_t of op PROTO_OP_TRANSFER with the request's id, its own key
 * and the fingerprint a single transfer with the same fields has (so a key
 * is shared with single transfers). Strings point into map's memory.
 * Returns PROTO_OK or PROTO_E_BAD_REQUEST (*why as above); out->items is
 * NULL unless PROTO_OK.
 */
proto_err_t request_decode_transfers(const msgpack_object *map, request_transfers_t *out,
                                     uint32_t *bad_index, const char **why);
void request_transfers_free(request_transfers_t *t);

#endif
