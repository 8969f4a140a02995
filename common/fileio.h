/*
 * fileio.h - the few durable-file steps every file format of esbank needs:
 * write every byte, make it durable, make a rename or a new name durable.
 */
#ifndef ESBANK_FILEIO_H
#define ESBANK_FILEIO_H

#include <stddef.h>

/* Writes all n bytes at fd's offset, retrying short writes and EINTR. 0 or -errno. */
int fileio_write_all(int fd, const void *p, size_t n);

/* Writes all n bytes to fd, then fsyncs it. 0 or -errno. */
int fileio_write_synced(int fd, const void *p, size_t n);

/* fsyncs the directory dir, so that names created or renamed in it stay. 0 or -errno. */
int fileio_fsync_dir(const char *dir);

#endif
