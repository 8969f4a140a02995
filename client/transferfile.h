/*
 * transferfile.h - `esbank transfer --file FILE`: the transfers of a CSV
 * file (payroll, settlement) sent as "transfers" requests (docs/protocol.md).
 */
#ifndef ESBANK_CLIENT_TRANSFERFILE_H
#define ESBANK_CLIENT_TRANSFERFILE_H

#include "call.h"

#include <stdbool.h>
#include <stddef.h>

#define TRANSFERFILE_BATCH_DEFAULT 1000
#define TRANSFERFILE_LINES_MAX 10000000   /* transfers in one file */
#define TRANSFERFILE_LINE_BYTES_MAX 512

/*
 * Reads path ("-": stdin), checks every line, then sends the transfers in
 * requests of batch (1..8,192) with "atomic" when atomic is set; prints
 * each refused transfer and a summary (with c->json: one JSON line per
 * transfer, then the summary). Returns 0 when every transfer was done, 100
 * when a line is malformed (nothing sent) or a transfer was refused, 111 or
 * the call's exit code when the server could not be asked.
 */
int transferfile_run(call_t *c, const char *path, size_t batch, bool atomic);

#endif
