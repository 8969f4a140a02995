/*
 * mailname.h - the file name of a mail in the Maildir outbox
 * (DATA/mail/outbox/{new,cur}/): written by the mailer (mailer/maildir.c
 * delivers under it), read back by `esbank bench`, which finds the mail of
 * an event by its seq.
 *
 *     "<ts>.esbank-<seq>.<host>"
 *
 * ts: the event's time in whole seconds since the epoch (decimal); seq: the
 * event's sequence number (decimal); host: the machine's name, '/' written
 * as "\057" and ':' as "\072" (as Maildir asks), cut to MAILNAME_HOST_MAX
 * bytes, "localhost" when empty. One event gives one name, so an event sent
 * again is found already delivered. A mail client may append ":2,<flags>"
 * when it moves the file to cur/.
 */
#ifndef ESBANK_COMMON_MAILNAME_H
#define ESBANK_COMMON_MAILNAME_H

#include <stdint.h>

#define MAILNAME_MAX 255     /* one file name */
#define MAILNAME_HOST_MAX 64 /* host part of a file name, after escaping */

/* Writes the name of the mail for event seq at ts_ms into out. */
void mailname_format(char out[MAILNAME_MAX + 1], int64_t ts_ms, uint64_t seq, const char *host);

/*
 * The seq in a name that holds ".esbank-<digits>." (any other name, a
 * stranger's mail, is not ours). Returns 0 and sets *seq, or -EINVAL.
 */
int mailname_seq(const char *name, uint64_t *seq);

#endif
