/*
 * msg.c - msgpack decoding and encoding helpers (see msg.h).
 *
 * Rule for a valid frame body: exactly one msgpack object, a map, spanning
 * every byte. Truncated bodies and trailing bytes are -EBADMSG; any other
 * object is -EPROTO. The callers turn both into the protocol's bad_request.
 */
#include "msg.h"
#include "frame.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

void msg_buf_init(msg_buf_t *b)
{
	msgpack_sbuffer_init(&b->sb);
	msgpack_packer_init(&b->pk, &b->sb, msgpack_sbuffer_write);
}

void msg_buf_free(msg_buf_t *b)
{
	msgpack_sbuffer_destroy(&b->sb);
	msgpack_sbuffer_init(&b->sb);
}

void msg_buf_reset(msg_buf_t *b)
{
	b->sb.size = 0;
}

size_t msg_frame_begin(msg_buf_t *b)
{
	size_t off = b->sb.size;
	static const char zero[FRAME_HEADER_BYTES];
	msgpack_sbuffer_write(&b->sb, zero, sizeof(zero));
	return off;
}

void msg_frame_end(msg_buf_t *b, size_t off)
{
	size_t body = b->sb.size - off - FRAME_HEADER_BYTES;
	frame_put_header(b->sb.data + off, (uint32_t)body);
}

void msg_buf_append(msg_buf_t *b, const void *data, size_t n)
{
	msgpack_sbuffer_write(&b->sb, data, n);
}

/*
 * msgpack-c allocates a container's elements from its declared count before
 * reading them, so a 5-byte array header claiming 2^32 - 1 elements would
 * make it allocate ~100 GB. This walk rejects, before unpacking, any
 * container whose count exceeds the bytes left (every element takes at least
 * one byte), any string longer than the bytes left, and nesting deeper than
 * MSG_DEPTH_MAX.
 */
#define MSG_DEPTH_MAX 32

static uint64_t msg_be(const unsigned char *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* Bytes of the length field of a sized type (str/bin/ext/array/map 8..32). */
static int msg_len_bytes(unsigned c)
{
	switch (c) {
	case 0xc4: case 0xc7: case 0xd9: return 1;
	case 0xc5: case 0xc8: case 0xda: case 0xdc: case 0xde: return 2;
	case 0xc6: case 0xc9: case 0xdb: case 0xdd: case 0xdf: return 4;
	default: return 0;
	}
}

/* Payload bytes of a fixed-size type after its tag; -1 for sized or invalid. */
static int msg_fixed_payload(unsigned c)
{
	switch (c) {
	case 0xc0: case 0xc2: case 0xc3: return 0;            /* nil, false, true */
	case 0xcc: case 0xd0: return 1;                        /* u8, i8 */
	case 0xcd: case 0xd1: return 2;
	case 0xca: case 0xce: case 0xd2: return 4;             /* f32, u32, i32 */
	case 0xcb: case 0xcf: case 0xd3: return 8;
	case 0xd4: return 2;                                   /* fixext: type + data */
	case 0xd5: return 3;
	case 0xd6: return 5;
	case 0xd7: return 9;
	case 0xd8: return 17;
	default: return -1;
	}
}

/* Header of the object at p: its own size, payload bytes and child count. */
static int msg_head(const unsigned char *p, size_t left, size_t *head, uint64_t *payload,
                    uint64_t *children)
{
	unsigned c = p[0];
	*payload = 0;
	*children = 0;
	*head = 1;
	if (c <= 0x7f || c >= 0xe0) /* fixint */
		return 0;
	if (c <= 0x9f) { /* fixmap, fixarray */
		*children = (uint64_t)(c & 0x0f) * (c <= 0x8f ? 2 : 1);
		return 0;
	}
	if (c <= 0xbf) { /* fixstr */
		*payload = c & 0x1f;
		return 0;
	}
	int f = msg_fixed_payload(c);
	if (f >= 0) {
		*payload = (uint64_t)f;
		return 0;
	}
	int n = msg_len_bytes(c);
	if (n == 0 || left < (size_t)1 + (size_t)n)
		return -EBADMSG;
	uint64_t v = msg_be(p + 1, n);
	*head = 1 + (size_t)n;
	if (c >= 0xdc)
		*children = c >= 0xde ? 2 * v : v;
	else
		*payload = v + (c >= 0xc7 && c <= 0xc9 ? 1 : 0); /* ext: + type byte */
	return 0;
}

static int msg_walk(const unsigned char *p, size_t left, size_t *used, int depth)
{
	size_t head;
	uint64_t payload, children;
	if (left == 0 || depth > MSG_DEPTH_MAX)
		return -EBADMSG;
	if (msg_head(p, left, &head, &payload, &children) < 0)
		return -EBADMSG;
	if (head > left || payload > left - head || children > left - head)
		return -EBADMSG;
	size_t off = head + (size_t)payload;
	for (uint64_t i = 0; i < children; i++) {
		size_t u;
		if (msg_walk(p + off, left - off, &u, depth + 1) < 0)
			return -EBADMSG;
		off += u;
	}
	*used = off;
	return 0;
}

int msg_check(const char *buf, size_t len)
{
	size_t used;
	if (msg_walk((const unsigned char *)buf, len, &used, 0) < 0 || used != len)
		return -EBADMSG;
	return 0;
}

int msg_decode_map(const char *buf, size_t len, msgpack_zone *zone, msgpack_object *out)
{
	size_t off = 0;
	if (msg_check(buf, len) < 0)
		return -EBADMSG;
	msgpack_unpack_return r = msgpack_unpack(buf, len, &off, zone, out);
	if (r != MSGPACK_UNPACK_SUCCESS || off != len)
		return -EBADMSG;
	if (out->type != MSGPACK_OBJECT_MAP)
		return -EPROTO;
	return 0;
}

/* The scalar at p (already checked by msg_walk) as msgpack-c unpacks it:
 * signed encodings of values >= 0 are positive integers. A container or an
 * ext gets its type only (size 0). */
static void msg_scalar(const unsigned char *p, msgpack_object *o)
{
	unsigned c = p[0];
	memset(o, 0, sizeof(*o));
	size_t head;
	uint64_t payload, children;
	msg_head(p, SIZE_MAX, &head, &payload, &children);
	if (c <= 0x7f || (c >= 0xcc && c <= 0xcf)) {
		o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
		o->via.u64 = c <= 0x7f ? c : msg_be(p + 1, 1 << (c - 0xcc));
	} else if (c >= 0xe0 || (c >= 0xd0 && c <= 0xd3)) {
		int n = c >= 0xe0 ? 0 : 1 << (c - 0xd0);
		int64_t v = c >= 0xe0 ? (int8_t)c : (int64_t)msg_be(p + 1, n);
		if (n && n < 8) /* sign-extend */
			v = (int64_t)((uint64_t)v << (64 - 8 * n)) >> (64 - 8 * n);
		o->type = v < 0 ? MSGPACK_OBJECT_NEGATIVE_INTEGER : MSGPACK_OBJECT_POSITIVE_INTEGER;
		o->via.i64 = v;
	} else if (c == 0xc0) {
		o->type = MSGPACK_OBJECT_NIL;
	} else if (c == 0xc2 || c == 0xc3) {
		o->type = MSGPACK_OBJECT_BOOLEAN;
		o->via.boolean = c == 0xc3;
	} else if (c == 0xca || c == 0xcb) {
		o->type = c == 0xca ? MSGPACK_OBJECT_FLOAT32 : MSGPACK_OBJECT_FLOAT64;
		uint64_t bits = msg_be(p + 1, c == 0xca ? 4 : 8);
		if (c == 0xca) {
			uint32_t b32 = (uint32_t)bits;
			float f;
			memcpy(&f, &b32, sizeof(f));
			o->via.f64 = f;
		} else {
			memcpy(&o->via.f64, &bits, sizeof(o->via.f64));
		}
	} else if ((c >= 0xa0 && c <= 0xbf) || (c >= 0xd9 && c <= 0xdb)) {
		o->type = MSGPACK_OBJECT_STR;
		o->via.str.ptr = (const char *)p + head;
		o->via.str.size = (uint32_t)payload;
	} else if (c >= 0xc4 && c <= 0xc6) {
		o->type = MSGPACK_OBJECT_BIN;
		o->via.bin.ptr = (const char *)p + head;
		o->via.bin.size = (uint32_t)payload;
	} else if ((c >= 0x80 && c <= 0x8f) || c == 0xde || c == 0xdf) {
		o->type = MSGPACK_OBJECT_MAP;
	} else if ((c >= 0x90 && c <= 0x9f) || c == 0xdc || c == 0xdd) {
		o->type = MSGPACK_OBJECT_ARRAY;
	} else {
		o->type = MSGPACK_OBJECT_EXT;
	}
}

/* True when the object at p (checked) is a string equal to key[0..n). */
static bool msg_key_is(const unsigned char *p, const char *key, size_t n)
{
	unsigned c = p[0];
	if (!((c >= 0xa0 && c <= 0xbf) || (c >= 0xd9 && c <= 0xdb)))
		return false;
	size_t head;
	uint64_t payload, children;
	msg_head(p, SIZE_MAX, &head, &payload, &children);
	return payload == n && memcmp(p + head, key, n) == 0;
}

int msg_peek_map(const char *buf, size_t len, const char *const *keys, size_t keys_n,
                 msgpack_object_kv *kv, msgpack_object *out)
{
	assert(keys_n <= MSG_PEEK_KEYS_MAX);
	if (msg_check(buf, len) < 0)
		return -EBADMSG;
	const unsigned char *p = (const unsigned char *)buf;
	size_t head, off, used;
	uint64_t payload, entries;
	msg_head(p, len, &head, &payload, &entries);
	if (!((p[0] >= 0x80 && p[0] <= 0x8f) || p[0] == 0xde || p[0] == 0xdf))
		return -EPROTO;
	size_t key_len[MSG_PEEK_KEYS_MAX];
	bool found[MSG_PEEK_KEYS_MAX] = { false };
	for (size_t k = 0; k < keys_n; k++)
		key_len[k] = strlen(keys[k]);
	out->type = MSGPACK_OBJECT_MAP;
	out->via.map.ptr = kv;
	out->via.map.size = 0;
	off = head;
	for (uint64_t i = 0; i < entries; i += 2) {
		const unsigned char *key = p + off;
		msg_walk(key, len - off, &used, 1);
		off += used;
		for (size_t k = 0; k < keys_n; k++) {
			if (found[k] || !msg_key_is(key, keys[k], key_len[k]))
				continue;
			found[k] = true;
			msgpack_object_kv *e = &kv[out->via.map.size++];
			msg_scalar(key, &e->key);
			msg_scalar(p + off, &e->val);
		}
		msg_walk(p + off, len - off, &used, 1);
		off += used;
	}
	return 0;
}

/*
 * Byte by byte, stopping at the first difference or at s's end: every key
 * lookup (msg_get) compares against each key of a map, and measuring s
 * with strlen at each comparison was 6-7% of the bus's and the resolver's
 * samples in the closed loop (perf).
 */
bool msg_str_eq(const msgpack_object *o, const char *s)
{
	if (o->type != MSGPACK_OBJECT_STR)
		return false;
	const char *p = o->via.str.ptr;
	uint32_t n = o->via.str.size;
	for (uint32_t i = 0; i < n; i++)
		if (s[i] != p[i] || s[i] == '\0')
			return false;
	return s[n] == '\0';
}

const msgpack_object *msg_get(const msgpack_object *map, const char *key)
{
	if (!map || map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object_kv *kv = &map->via.map.ptr[i];
		if (msg_str_eq(&kv->key, key))
			return &kv->val;
	}
	return NULL;
}

int msg_get_str(const msgpack_object *map, const char *key, const char **s, size_t *n)
{
	const msgpack_object *o = msg_get(map, key);
	if (!o)
		return -ENOENT;
	if (o->type != MSGPACK_OBJECT_STR)
		return -EINVAL;
	*s = o->via.str.ptr;
	*n = o->via.str.size;
	return 0;
}

int msg_get_bin(const msgpack_object *map, const char *key, const char **p, size_t *n)
{
	const msgpack_object *o = msg_get(map, key);
	if (!o)
		return -ENOENT;
	if (o->type != MSGPACK_OBJECT_BIN)
		return -EINVAL;
	*p = o->via.bin.ptr;
	*n = o->via.bin.size;
	return 0;
}

int msg_get_u64(const msgpack_object *map, const char *key, uint64_t *v)
{
	const msgpack_object *o = msg_get(map, key);
	if (!o)
		return -ENOENT;
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return -EINVAL;
	*v = o->via.u64;
	return 0;
}

int msg_get_i64(const msgpack_object *map, const char *key, int64_t *v)
{
	const msgpack_object *o = msg_get(map, key);
	if (!o)
		return -ENOENT;
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		*v = o->via.i64;
		return 0;
	}
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > INT64_MAX)
		return -EINVAL;
	*v = (int64_t)o->via.u64;
	return 0;
}

int msg_get_bool(const msgpack_object *map, const char *key, bool *v)
{
	const msgpack_object *o = msg_get(map, key);
	if (!o)
		return -ENOENT;
	if (o->type != MSGPACK_OBJECT_BOOLEAN)
		return -EINVAL;
	*v = o->via.boolean;
	return 0;
}

int msg_get_strcpy(const msgpack_object *map, const char *key, char *dst, size_t dst_size)
{
	const char *s;
	size_t n;
	int rc = msg_get_str(map, key, &s, &n);
	if (rc < 0)
		return rc;
	if (n >= dst_size)
		return -EINVAL;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return 0;
}

void msg_pack_strn(msgpack_packer *pk, const char *s, size_t n)
{
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

void msg_pack_str(msgpack_packer *pk, const char *s)
{
	msg_pack_strn(pk, s, strlen(s));
}

void msg_pack_binn(msgpack_packer *pk, const void *p, size_t n)
{
	msgpack_pack_bin(pk, n);
	msgpack_pack_bin_body(pk, p, n);
}

void msg_pack_kv_str(msgpack_packer *pk, const char *key, const char *val)
{
	msg_pack_str(pk, key);
	msg_pack_str(pk, val);
}

void msg_pack_kv_strn(msgpack_packer *pk, const char *key, const char *val, size_t n)
{
	msg_pack_str(pk, key);
	msg_pack_strn(pk, val, n);
}

void msg_pack_kv_u64(msgpack_packer *pk, const char *key, uint64_t val)
{
	msg_pack_str(pk, key);
	msgpack_pack_uint64(pk, val);
}

void msg_pack_kv_i64(msgpack_packer *pk, const char *key, int64_t val)
{
	msg_pack_str(pk, key);
	msgpack_pack_int64(pk, val);
}

void msg_pack_kv_bool(msgpack_packer *pk, const char *key, bool val)
{
	msg_pack_str(pk, key);
	if (val)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

void msg_pack_kv_nil(msgpack_packer *pk, const char *key)
{
	msg_pack_str(pk, key);
	msgpack_pack_nil(pk);
}

void msg_pack_kv_bin(msgpack_packer *pk, const char *key, const void *p, size_t n)
{
	msg_pack_str(pk, key);
	msg_pack_binn(pk, p, n);
}
