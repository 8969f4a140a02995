/*
 * copy.h - what esbank backup and restore copy besides the log and the
 * snapshot: the files of a data directory that are copied byte for byte
 * (the mail spool and address book, the HTTP secret), each made durable
 * (fsync of the file and of its directory).
 */
#ifndef ESBANK_CLIENT_BACKUP_COPY_H
#define ESBANK_CLIENT_BACKUP_COPY_H

#include <stdbool.h>
#include <stddef.h>

#define COPY_PATH_MAX 4096
#define COPY_CHUNK_BYTES (64 * 1024)

/* What copy_plain() copied. */
typedef struct {
	size_t files;        /* files copied */
	size_t mails;        /* of them: mails in mail/queue and mail/dead */
	bool secret;         /* http.secret was there */
} copy_count_t;

/*
 * Copies the plain files of the data directory from into to (which exists):
 * mail/hwm, mail/addresses, mail/queue/<seq>, mail/dead/<seq> and
 * http.secret, in that order, each only when present (a mail that leaves
 * queue/ while it is read is skipped: it was sent). Temporary files are
 * left out. Modes are kept. Returns 0 or -errno (with path naming the file).
 */
int copy_plain(const char *from, const char *to, copy_count_t *count,
	       char path[COPY_PATH_MAX]);

/*
 * Copies the regular files of directory from (not those whose name starts
 * with '.') into directory to, created with mode 0700 when absent. Files
 * that vanish while copied are skipped. *n counts the files copied.
 * 0 or -errno (path names the file).
 */
int copy_dir_files(const char *from, const char *to, size_t *n, char path[COPY_PATH_MAX]);

/* dir/name into out: 0, or -ENAMETOOLONG. */
int copy_join(char out[COPY_PATH_MAX], const char *dir, const char *name);

/* Copies one file (mode kept, O_EXCL, fsync'd). 0, -ENOENT, or -errno. */
int copy_file(const char *from, const char *to);

/*
 * Copies DATA/keys (common/keystore.h), when present, from into to. A
 * backup copies it after the log: every key an event of the copied log
 * needs was written before that event, so the copy has it (a key destroyed
 * meanwhile stays destroyed: erasure wins). 0 or -errno (path names it).
 */
int copy_keys(const char *from, const char *to, char path[COPY_PATH_MAX]);

/* Removes dir and everything under it (a failed backup's staging). 0 or -errno. */
int copy_remove_tree(const char *dir);

#endif
