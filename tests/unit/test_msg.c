/* test_msg.c - msgpack decoding: exactly one map, hostile sizes refused. */
#include "msg.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

static int decode(const void *buf, size_t n)
{
	msgpack_zone zone;
	msgpack_zone_init(&zone, 256);
	msgpack_object o;
	int rc = msg_decode_map(buf, n, &zone, &o);
	msgpack_zone_destroy(&zone);
	return rc;
}

static size_t pack_sample(msg_buf_t *b)
{
	msgpack_pack_map(&b->pk, 4);
	msg_pack_kv_str(&b->pk, "op", "transfer");
	msg_pack_kv_u64(&b->pk, "id", 123456789012ULL);
	msg_pack_kv_i64(&b->pk, "amount", -5);
	msg_pack_str(&b->pk, "nested");
	msgpack_pack_array(&b->pk, 3);
	msgpack_pack_double(&b->pk, 1.5);
	msg_pack_binn(&b->pk, "\x00\x01", 2);
	msgpack_pack_map(&b->pk, 1);
	msg_pack_kv_nil(&b->pk, "x");
	return b->sb.size;
}

Test(msg, round_trip_of_every_shape)
{
	msg_buf_t b;
	msg_buf_init(&b);
	size_t n = pack_sample(&b);
	cr_assert_eq(msg_check(b.sb.data, n), 0);
	cr_assert_eq(decode(b.sb.data, n), 0);
	msgpack_zone zone;
	msgpack_zone_init(&zone, 256);
	msgpack_object o;
	cr_assert_eq(msg_decode_map(b.sb.data, n, &zone, &o), 0);
	uint64_t id;
	int64_t amount;
	cr_assert_eq(msg_get_u64(&o, "id", &id), 0);
	cr_assert_eq(id, 123456789012ULL);
	cr_assert_eq(msg_get_i64(&o, "amount", &amount), 0);
	cr_assert_eq(amount, -5);
	cr_assert_eq(msg_get_u64(&o, "amount", &id), -EINVAL);
	cr_assert_eq(msg_get_u64(&o, "missing", &id), -ENOENT);
	msgpack_zone_destroy(&zone);
	msg_buf_free(&b);
}

Test(msg, every_truncation_is_refused)
{
	msg_buf_t b;
	msg_buf_init(&b);
	size_t n = pack_sample(&b);
	for (size_t cut = 0; cut < n; cut++)
		cr_assert_eq(decode(b.sb.data, cut), -EBADMSG, "cut at %zu", cut);
	msg_buf_free(&b);
}

Test(msg, trailing_bytes_are_refused)
{
	msg_buf_t b;
	msg_buf_init(&b);
	size_t n = pack_sample(&b);
	msgpack_pack_nil(&b.pk);
	cr_assert_eq(decode(b.sb.data, n + 1), -EBADMSG);
	msg_buf_free(&b);
}

Test(msg, an_array_is_not_a_map)
{
	const unsigned char arr[] = { 0x92, 0x01, 0x02 };
	cr_assert_eq(decode(arr, sizeof(arr)), -EPROTO);
}

Test(msg, huge_declared_sizes_are_refused_before_allocation)
{
	const unsigned char array32[] = { 0xdd, 0xff, 0xff, 0xff, 0xff, 0x00 };
	const unsigned char map32[] = { 0xdf, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00 };
	const unsigned char str32[] = { 0x81, 0xa1, 'k', 0xdb, 0xff, 0xff, 0xff, 0xf0, 'x' };
	const unsigned char bin32[] = { 0x81, 0xa1, 'k', 0xc6, 0x7f, 0xff, 0xff, 0xff };
	const unsigned char ext32[] = { 0x81, 0xa1, 'k', 0xc9, 0x7f, 0xff, 0xff, 0xff, 0x01 };
	cr_assert_eq(msg_check((const char *)array32, sizeof(array32)), -EBADMSG);
	cr_assert_eq(msg_check((const char *)map32, sizeof(map32)), -EBADMSG);
	cr_assert_eq(decode(str32, sizeof(str32)), -EBADMSG);
	cr_assert_eq(decode(bin32, sizeof(bin32)), -EBADMSG);
	cr_assert_eq(decode(ext32, sizeof(ext32)), -EBADMSG);
}

Test(msg, deep_nesting_is_refused)
{
	unsigned char deep[200];
	memset(deep, 0x91, sizeof(deep) - 1); /* [[[[...]]]] */
	deep[sizeof(deep) - 1] = 0xc0;
	cr_assert_eq(msg_check((const char *)deep, sizeof(deep)), -EBADMSG);
	cr_assert_eq(msg_check((const char *)deep + sizeof(deep) - 10, 10), 0);
}

Test(msg, the_reserved_tag_is_refused)
{
	const unsigned char bad[] = { 0x81, 0xa1, 'k', 0xc1 };
	cr_assert_eq(decode(bad, sizeof(bad)), -EBADMSG);
}

Test(msg, non_string_keys_are_skipped_by_lookup)
{
	const unsigned char m[] = { 0x82, 0x01, 0x02, 0xa2, 'i', 'd', 0x07 };
	msgpack_zone zone;
	msgpack_zone_init(&zone, 256);
	msgpack_object o;
	cr_assert_eq(msg_decode_map((const char *)m, sizeof(m), &zone, &o), 0);
	uint64_t id = 0;
	cr_assert_eq(msg_get_u64(&o, "id", &id), 0);
	cr_assert_eq(id, 7);
	msgpack_zone_destroy(&zone);
}
