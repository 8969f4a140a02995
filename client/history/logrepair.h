/*
 * logrepair.h - esbank log-repair: the operator's cut of a damaged
 * DATA/events.log (logfile_repair), like redis-check-aof --fix.
 */
#ifndef ESBANK_CLIENT_LOGREPAIR_H
#define ESBANK_CLIENT_LOGREPAIR_H

#include "config.h"

#include <stdbool.h>

#define LOGREPAIR_HELP                                                                  \
	"Finds the first damaged or torn record of DATA/events.log and cuts the log\n"  \
	"there. Every byte cut is first copied to DATA/events.log.cut-<seq>-<time>\n"   \
	"(fsync'd), so nothing is lost for good. Refuses while a logger has the log\n"  \
	"open: stop the group first. --dry-run only says what it would cut. The events\n" \
	"cut are gone from history: the resolver and snapshots are rebuilt from the\n"  \
	"shorter log when the group starts again. Exits 0 (cut, or nothing to cut),\n"  \
	"100 (no log, or its file header is not an esbank log's), 111 (in use, I/O)."

/* Its option table (ends with {0}). */
extern const config_opt_t logrepair_opts[];

/* Runs esbank log-repair with its parsed options; returns the exit code. */
int logrepair_run(const config_opt_t *opts, bool json);

#endif
