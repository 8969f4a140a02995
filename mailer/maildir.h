/*
 * maildir.h - atomic delivery of messages into a Maildir (the outbox), and
 * the mailer's durable high-water mark. The layout of both is described at
 * the top of maildir.c; the names of the mails in common/mailname.h.
 */
#ifndef ESBANK_MAILER_MAILDIR_H
#define ESBANK_MAILER_MAILDIR_H

#include "mailname.h"

#include <stddef.h>
#include <stdint.h>

#define MAILDIR_PATH_MAX 4096
#define MAILDIR_NAME_MAX MAILNAME_MAX /* one file name (common/mailname.h) */

/* An open Maildir. Invariant: root/tmp, root/new and root/cur exist. */
typedef struct {
	char root[MAILDIR_PATH_MAX];
	int new_fd; /* directory fd of root/new, for fsync */
} maildir_t;

/*
 * Creates root and its tmp/, new/ and cur/ (mode 0700) when missing and opens
 * it. Returns 0 or a negative errno; md needs maildir_close() after success.
 */
int maildir_open(maildir_t *md, const char *root);
void maildir_close(maildir_t *md);

/*
 * Delivers data[0..len) as new/<name>: writes tmp/<name>, fsyncs it, renames
 * it into new/ and fsyncs new/. Returns 0 when delivered, 1 when a message
 * of that name is already in new/ or cur/ (nothing is written), or a
 * negative errno (the tmp file is removed; after a failed fsync of new/ the
 * new name is removed too, so that a retry writes it again instead of
 * finding it and fsyncing nothing).
 */
int maildir_deliver(maildir_t *md, const char *name, const char *data, size_t len);

/* Reads the high-water mark file at path; *hwm = 0 when there is none. 0 or -errno. */
int maildir_hwm_read(const char *path, uint64_t *hwm);

/* Replaces the file at path with hwm: temp file, fsync, rename, fsync dir. */
int maildir_hwm_write(const char *path, uint64_t hwm);

#endif
