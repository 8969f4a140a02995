/*
 * msg.c - msgpack decoding and encoding helpers (see msg.h).
 *
 * Rule for a valid frame body: exactly one msgpack object, a map, spanning
 * every byte. Truncated bodies and trailing bytes are -EBADMSG; any other
 * object is -EPROTO. The callers turn both into the protocol's bad_request.
 */
#include "msg.h"
#include "frame.h"

#include <errno.h>
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

int msg_decode_map(const char *buf, size_t len, msgpack_zone *zone, msgpack_object *out)
{
	size_t off = 0;
	msgpack_unpack_return r = msgpack_unpack(buf, len, &off, zone, out);
	if (r != MSGPACK_UNPACK_SUCCESS || off != len)
		return -EBADMSG;
	if (out->type != MSGPACK_OBJECT_MAP)
		return -EPROTO;
	return 0;
}

bool msg_str_eq(const msgpack_object *o, const char *s)
{
	size_t n = strlen(s);
	return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
	       memcmp(o->via.str.ptr, s, n) == 0;
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
