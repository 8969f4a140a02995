/*
 * msg.h - msgpack helpers shared by every codec in esbank.
 *
 * Reading: a frame body is decoded with msg_decode_map() into a msgpack
 * object that lives in a caller-owned msgpack_zone; the msg_get_* helpers
 * look fields up by string key (entries whose key is not a string are
 * skipped, as PROTOCOL.md says) and check their types.
 *
 * Writing: msg_buf_t is a growable byte buffer with a msgpack_packer bound to
 * it. msg_frame_begin()/msg_frame_end() reserve and fill the 4-byte length of
 * a frame around whatever is packed in between, so a message is encoded once,
 * straight into the buffer that is written to the socket.
 */
#ifndef ESBANK_MSG_H
#define ESBANK_MSG_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
	msgpack_sbuffer sb;
	msgpack_packer pk;
} msg_buf_t;

/* Initialises an empty buffer; free with msg_buf_free(). */
void msg_buf_init(msg_buf_t *b);
void msg_buf_free(msg_buf_t *b);
/* Forgets the contents, keeps the memory. */
void msg_buf_reset(msg_buf_t *b);

/* Reserves a frame header; returns the offset to pass to msg_frame_end(). */
size_t msg_frame_begin(msg_buf_t *b);
/* Fills the header reserved at off with the length of what followed it. */
void msg_frame_end(msg_buf_t *b, size_t off);
/* Appends raw bytes (already-encoded msgpack) to the buffer. */
void msg_buf_append(msg_buf_t *b, const void *data, size_t n);

/*
 * Decodes buf[0..len) as exactly one msgpack map. Returns 0 and sets *out
 * (allocated in zone), -EBADMSG when the bytes are not one whole msgpack
 * object with nothing after it, -EPROTO when the object is not a map.
 */
int msg_decode_map(const char *buf, size_t len, msgpack_zone *zone, msgpack_object *out);

/*
 * Checks that buf[0..len) is exactly one well-formed msgpack object whose
 * declared sizes fit in the bytes given (so unpacking it cannot be made to
 * allocate more than a small multiple of len) and whose nesting is bounded.
 * Returns 0 or -EBADMSG. msg_decode_map() calls it first.
 */
int msg_check(const char *buf, size_t len);

/* The most keys msg_peek_map() looks for at once. */
#define MSG_PEEK_KEYS_MAX 8

/*
 * Checks buf[0..len) exactly as msg_decode_map() does (same returns) without
 * unpacking it: *out becomes a map of, for each of keys[0..keys_n) present at
 * the top level as a string key, its first entry (so msg_get() and the
 * msg_get_* readers answer on *out as on the whole map for these keys, in
 * kv[], keys_n entries at most). Scalar values are as msgpack-c unpacks them
 * (strings and bins point into buf); an array, a map or an ext value carries
 * its type only, with no elements. No allocation: for a peek at a large
 * message (the bus reads a request's "id" and "op", then forwards its bytes).
 */
int msg_peek_map(const char *buf, size_t len, const char *const *keys, size_t keys_n,
                 msgpack_object_kv *kv, msgpack_object *out);

/* The value under the string key in map, or NULL when absent. */
const msgpack_object *msg_get(const msgpack_object *map, const char *key);

/*
 * Typed field readers. Each returns 0 on success, -ENOENT when the key is
 * absent (a nil value counts as absent only where noted), -EINVAL when the
 * value has the wrong type or is out of range.
 */
int msg_get_str(const msgpack_object *map, const char *key, const char **s, size_t *n);
int msg_get_bin(const msgpack_object *map, const char *key, const char **p, size_t *n);
int msg_get_u64(const msgpack_object *map, const char *key, uint64_t *v);
int msg_get_i64(const msgpack_object *map, const char *key, int64_t *v);
int msg_get_bool(const msgpack_object *map, const char *key, bool *v);
/* Like msg_get_str but copies into dst (NUL-terminated); -EINVAL if too long. */
int msg_get_strcpy(const msgpack_object *map, const char *key, char *dst, size_t dst_size);

/* True when o is a msgpack string equal to s. */
bool msg_str_eq(const msgpack_object *o, const char *s);

/* Packers for common shapes. */
void msg_pack_str(msgpack_packer *pk, const char *s);
void msg_pack_strn(msgpack_packer *pk, const char *s, size_t n);
void msg_pack_binn(msgpack_packer *pk, const void *p, size_t n);
void msg_pack_kv_str(msgpack_packer *pk, const char *key, const char *val);
void msg_pack_kv_strn(msgpack_packer *pk, const char *key, const char *val, size_t n);
void msg_pack_kv_u64(msgpack_packer *pk, const char *key, uint64_t val);
void msg_pack_kv_i64(msgpack_packer *pk, const char *key, int64_t val);
void msg_pack_kv_bool(msgpack_packer *pk, const char *key, bool val);
void msg_pack_kv_nil(msgpack_packer *pk, const char *key);
void msg_pack_kv_bin(msgpack_packer *pk, const char *key, const void *p, size_t n);

#endif
