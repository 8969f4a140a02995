/*
 * reqpack.h - libesbank's request packing (internal): an esbank_request_t
 * as the protocol's request map, packed once for both the blocking and the
 * async link.
 */
#ifndef ESBANK_LIB_REQPACK_H
#define ESBANK_LIB_REQPACK_H

#include "esbank.h"

#include <msgpack.h>

/* Packs req's fields (not "op" and "id": the link packs those) into pk. */
void libreq_pack_fields(msgpack_packer *pk, const esbank_request_t *req);

#endif
