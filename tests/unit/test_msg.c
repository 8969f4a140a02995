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

/* The peek and the whole decoding agree on b: same return, and on success
 * the same answer of every typed reader for each key. */
static void peek_agrees(const char *b, size_t n)
{
	static const char *const keys[] = { "id", "op", "amount", "nested", "x" };
	msgpack_zone zone;
	msgpack_zone_init(&zone, 256);
	msgpack_object whole, peek;
	msgpack_object_kv kv[5];
	int rw = msg_decode_map(b, n, &zone, &whole);
	int rp = msg_peek_map(b, n, keys, 5, kv, &peek);
	cr_assert_eq(rp, rw, "peek %d, decode %d on %zu bytes", rp, rw, n);
	for (size_t k = 0; rw == 0 && k < 5; k++) {
		uint64_t u1 = 0, u2 = 0;
		int64_t i1 = 0, i2 = 0;
		const char *s1 = NULL, *s2 = NULL;
		size_t n1 = 0, n2 = 0;
		bool b1 = false, b2 = false;
		cr_assert_eq(msg_get_u64(&peek, keys[k], &u1), msg_get_u64(&whole, keys[k], &u2));
		cr_assert_eq(u1, u2);
		cr_assert_eq(msg_get_i64(&peek, keys[k], &i1), msg_get_i64(&whole, keys[k], &i2));
		cr_assert_eq(i1, i2);
		cr_assert_eq(msg_get_str(&peek, keys[k], &s1, &n1),
		             msg_get_str(&whole, keys[k], &s2, &n2));
		cr_assert(n1 == n2 && (n1 == 0 || s1 == s2), "key %s", keys[k]);
		cr_assert_eq(msg_get_bin(&peek, keys[k], &s1, &n1),
		             msg_get_bin(&whole, keys[k], &s2, &n2));
		cr_assert(n1 == n2 && (n1 == 0 || s1 == s2), "key %s", keys[k]);
		cr_assert_eq(msg_get_bool(&peek, keys[k], &b1), msg_get_bool(&whole, keys[k], &b2));
		cr_assert_eq(b1, b2);
		const msgpack_object *o1 = msg_get(&peek, keys[k]), *o2 = msg_get(&whole, keys[k]);
		cr_assert_eq(o1 == NULL, o2 == NULL);
		cr_assert(!o1 || o1->type == o2->type);
	}
	msgpack_zone_destroy(&zone);
}

Test(msg, a_peek_answers_as_the_whole_decoding)
{
	msg_buf_t b;
	msg_buf_init(&b);
	pack_sample(&b);
	msgpack_pack_int8(&b.pk, 0); /* a trailing byte, then cut off again */
	size_t n = b.sb.size - 1;
	peek_agrees(b.sb.data, n);
	for (size_t cut = 0; cut <= n + 1; cut++)
		peek_agrees(b.sb.data, cut);
	unsigned seed = 15;
	char m[256];
	for (int round = 0; round < 20000; round++) { /* byte substitutions */
		memcpy(m, b.sb.data, n);
		for (int j = 0; j < 1 + round % 3; j++)
			m[rand_r(&seed) % n] = (char)rand_r(&seed);
		peek_agrees(m, n);
	}
	msg_buf_free(&b);
}

Test(msg, a_peek_takes_the_first_of_repeated_keys_and_every_integer_encoding)
{
	msg_buf_t b;
	msg_buf_init(&b);
	msgpack_pack_map(&b.pk, 9);
	msgpack_pack_int(&b.pk, 1); /* a key that is not a string */
	msgpack_pack_int(&b.pk, 2);
	msg_pack_binn(&b.pk, "id", 2); /* nor this one */
	msgpack_pack_int(&b.pk, 3);
	msg_pack_str(&b.pk, "id");
	msgpack_pack_int64(&b.pk, 7);
	msg_pack_str(&b.pk, "id");
	msgpack_pack_int64(&b.pk, 8);
	msg_pack_kv_i64(&b.pk, "amount", INT64_MIN);
	msg_pack_str(&b.pk, "nested");
	msgpack_pack_float(&b.pk, 2.5f);
	msg_pack_kv_bool(&b.pk, "x", true);
	msg_pack_str(&b.pk, "op");
	msgpack_pack_array(&b.pk, 0);
	msg_pack_kv_str(&b.pk, "op", "transfer");
	peek_agrees(b.sb.data, b.sb.size);
	static const uint8_t ints[][10] = {
		{ 0x81, 0xa2, 'i', 'd', 0xd0, 0x05 },       { 0x81, 0xa2, 'i', 'd', 0xd0, 0x85 },
		{ 0x81, 0xa2, 'i', 'd', 0xd1, 0x80, 0x00 }, { 0x81, 0xa2, 'i', 'd', 0xd2, 0, 0, 0, 9 },
		{ 0x81, 0xa2, 'i', 'd', 0xe3 },             { 0x81, 0xa2, 'i', 'd', 0xcd, 0xff, 0xff },
		{ 0x81, 0xa2, 'i', 'd', 0xc3 },             { 0x81, 0xa2, 'i', 'd', 0xc0 },
	};
	static const size_t lens[] = { 6, 6, 7, 9, 5, 7, 5, 5 };
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
		peek_agrees((const char *)ints[i], lens[i]);
	msg_buf_free(&b);
}

static msgpack_object str_obj(const char *p, uint32_t n)
{
	return (msgpack_object){ .type = MSGPACK_OBJECT_STR, .via.str = { .size = n, .ptr = p } };
}

Test(msg, str_eq_is_exact)
{
	msgpack_object o = str_obj("amount", 6);
	cr_assert(msg_str_eq(&o, "amount"));
	cr_assert_not(msg_str_eq(&o, "amoun"), "a prefix of the object");
	cr_assert_not(msg_str_eq(&o, "amounts"), "the object a prefix");
	cr_assert_not(msg_str_eq(&o, "Amount"));
	cr_assert_not(msg_str_eq(&o, ""));
	msgpack_object nul = str_obj("a\0b", 3);
	cr_assert_not(msg_str_eq(&nul, "a"), "a NUL inside the object");
	cr_assert_not(msg_str_eq(&nul, "a\0b"), "no C string holds a NUL");
	msgpack_object empty = str_obj("", 0);
	cr_assert(msg_str_eq(&empty, ""));
	cr_assert_not(msg_str_eq(&empty, "a"));
	msgpack_object bin = { .type = MSGPACK_OBJECT_BIN, .via.bin = { .size = 6, .ptr = "amount" } };
	cr_assert_not(msg_str_eq(&bin, "amount"), "only a string is a string");
}
