/*
 * fuzz_request.c - the request decoder (common/request.c) for every op: the
 * bus's msg_decode_map + proto_peek, then the resolver's request_decode,
 * and the error reply packed for it.
 *
 * Input: byte 0 selects an op; the rest is a frame body. When byte 0 names
 * an op (values below the op count) and the body is a map, the map is
 * re-packed with that "op" (and "id" 1) in front of its own entries, so
 * every op's field checks are reached even from random bodies. Checks:
 * a decoded request obeys PROTOCOL.md's limits (email 3..254 bytes,
 * password 8..1024, key 1..64, amount an integer); the decoder returns only
 * OK, bad_request or unknown_op, always with a reason for an error.
 */
#include "fuzz.h"

#include "frame.h"
#include "msg.h"
#include "request.h"

#include <assert.h>
#include <string.h>

static const char *const fuzz_ops[] = {
	"open_account", "verify_account", "reissue_code", "transfer", "withdraw",
	"get_account", "authenticate", "sum_transactions", "inactive_users", "events",
	"subscribe", "status", "ping",
};
#define FUZZ_OPS_COUNT (sizeof(fuzz_ops) / sizeof(fuzz_ops[0]))

static void fuzz_request_check(const ledger_cmd_t *cmd)
{
	if (cmd->op == PROTO_OP_OPEN_ACCOUNT) {
		assert(cmd->email_len >= 3 && cmd->email_len <= LEDGER_EMAIL_BYTES_MAX);
		assert(memchr(cmd->email, '@', cmd->email_len));
		assert(cmd->password_len >= LEDGER_PASSWORD_BYTES_MIN &&
		       cmd->password_len <= LEDGER_PASSWORD_BYTES_MAX);
		char low[LEDGER_EMAIL_BYTES_MAX + 1];
		assert(ledger_email_valid(cmd->email, cmd->email_len, low));
	}
	if (cmd->has_key)
		assert(cmd->key_len >= 1 && cmd->key_len <= LEDGER_KEY_BYTES_MAX);
	if (cmd->code)
		assert(cmd->code_len <= FRAME_BODY_MAX);
}

static void fuzz_request_map(const msgpack_object *map)
{
	ledger_cmd_t cmd;
	const char *why = "unset";
	proto_err_t e = request_decode(map, &cmd, &why);
	assert(e == PROTO_OK || e == PROTO_E_BAD_REQUEST || e == PROTO_E_UNKNOWN_OP);
	if (e == PROTO_OK) {
		assert(why == NULL);
		fuzz_request_check(&cmd);
	} else {
		assert(why && *why);
	}
	uint64_t id = 0;
	proto_op_t op;
	proto_err_t p = proto_peek(map, &id, &op);
	/* the bus's peek and the resolver's decode agree on what is routable */
	assert(p == PROTO_OK || e != PROTO_OK);
	msg_buf_t b;
	msg_buf_init(&b);
	if (e == PROTO_OK)
		proto_pack_ok(&b.pk, cmd.id, 0);
	else
		proto_pack_error(&b.pk, id, e, why);
	msgpack_zone zone;
	msgpack_zone_init(&zone, 256);
	msgpack_object reply;
	assert(msg_decode_map(b.sb.data, b.sb.size, &zone, &reply) == 0);
	msgpack_zone_destroy(&zone);
	msg_buf_free(&b);
}

/* Re-packs map with "op" = fuzz_ops[k] and "id" = 1 first (later keys win
 * or lose as the decoder decides: duplicates are part of the test). */
static void fuzz_request_forced(const msgpack_object *map, size_t k)
{
	msg_buf_t b;
	msg_buf_init(&b);
	msgpack_pack_map(&b.pk, 2 + map->via.map.size);
	msg_pack_kv_str(&b.pk, "op", fuzz_ops[k]);
	msg_pack_kv_u64(&b.pk, "id", 1);
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		msgpack_pack_object(&b.pk, map->via.map.ptr[i].key);
		msgpack_pack_object(&b.pk, map->via.map.ptr[i].val);
	}
	msgpack_zone zone;
	msgpack_zone_init(&zone, 1024);
	msgpack_object m2;
	if (msg_decode_map(b.sb.data, b.sb.size, &zone, &m2) == 0)
		fuzz_request_map(&m2);
	msgpack_zone_destroy(&zone);
	msg_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > FRAME_BODY_MAX)
		return 0;
	size_t k = data[0];
	msgpack_zone zone;
	msgpack_zone_init(&zone, 1024);
	msgpack_object map;
	if (msg_decode_map((const char *)data + 1, size - 1, &zone, &map) == 0) {
		assert(map.type == MSGPACK_OBJECT_MAP);
		if (k < FUZZ_OPS_COUNT)
			fuzz_request_forced(&map, k);
		else
			fuzz_request_map(&map);
	}
	msgpack_zone_destroy(&zone);
	return 0;
}
