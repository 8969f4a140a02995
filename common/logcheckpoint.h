/*
 * logcheckpoint.h - DIR/events.chk: the chain hash of the event log at a
 * clean stop, so that the next writer's start-up check need not hash every
 * record again (the file's layout and rules are at the top of
 * logcheckpoint.c; common/logfile.c uses it).
 */
#ifndef ESBANK_LOGCHECKPOINT_H
#define ESBANK_LOGCHECKPOINT_H

#include <stdint.h>
#include <sys/stat.h>

#define LOGCHECKPOINT_NAME "events.chk"
#define LOGCHECKPOINT_HASH_BYTES 32

typedef struct {
	uint64_t seq; /* the log's last seq */
	uint64_t end; /* the log's length: the end of the batch holding seq */
	uint8_t hash[LOGCHECKPOINT_HASH_BYTES]; /* the chain hash at seq */
} logcheckpoint_t;

/*
 * Writes the checkpoint of the log open as fd at log_path (DIR/events.log)
 * beside it: fdatasyncs fd first, stamps the file's identity and times, and
 * replaces DIR/events.chk by rename. Returns 0 or a negative errno (then
 * there may be no checkpoint: the next start checks everything).
 */
int logcheckpoint_save(const char *log_path, int fd, const logcheckpoint_t *cp);

/*
 * Reads the checkpoint beside log_path and checks it against st, the log
 * file's fstat now. Returns 0 with *cp set; -ENOENT when there is none;
 * -EBADMSG when it is damaged; -ESTALE when the file changed since it was
 * written (another inode, length, modification or change time); or
 * another negative errno.
 */
int logcheckpoint_load(const char *log_path, const struct stat *st, logcheckpoint_t *cp);

#endif
