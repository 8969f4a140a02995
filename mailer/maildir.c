/*
 * maildir.c - the mailer's files (see maildir.h).
 *
 * DATA/mail/outbox/ is a Maildir (https://cr.yp.to/proto/maildir.html):
 *   tmp/  messages being written; a file left here by a crash is garbage
 *         and is overwritten when its event is delivered again.
 *   new/  delivered messages, one RFC 5322 message per file (message.c),
 *         CRLF line endings. A file appears here only whole: it is written
 *         to tmp/<name>, fsync'd, renamed to new/<name>, and new/ is fsync'd.
 *   cur/  created empty; a mail client moves what it has seen here, as
 *         "<name>:2,<flags>".
 *   File name: "<ts>.esbank-<seq>.<host>" (common/mailname.h, shared with
 *   `esbank bench`). One event gives one name, so an event sent again (after
 *   a restart) is found in new/ or cur/ and not written a second time.
 *
 * DATA/mail/hwm: the mailer's high-water mark, the highest event seq whose
 *   mail has been written. ASCII decimal digits and one "\n", nothing else.
 *   Replaced atomically (hwm.tmp, fsync, rename, fsync of DATA/mail). A
 *   missing file means 0. A file that does not parse is an error (the mailer
 *   stops rather than guess and mail the history again).
 */
#include "maildir.h"

#include "fileio.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAILDIR_HWM_BYTES_MAX 32

static int maildir_mkdir(const char *path)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* out = root "/" sub ["/" name]; -ENAMETOOLONG when it does not fit. */
static int maildir_sub(const maildir_t *md, const char *sub, const char *name, char *out)
{
	const char *parts[] = { md->root, "/", sub, name ? "/" : "", name ? name : "" };
	size_t len = 0;
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		size_t n = strlen(parts[i]);
		if (len + n >= MAILDIR_PATH_MAX)
			return -ENAMETOOLONG;
		memcpy(out + len, parts[i], n);
		len += n;
	}
	out[len] = '\0';
	return 0;
}

int maildir_open(maildir_t *md, const char *root)
{
	static const char *const subs[] = { "tmp", "new", "cur" };
	char path[MAILDIR_PATH_MAX];
	if (snprintf(md->root, sizeof(md->root), "%s", root) >= (int)sizeof(md->root))
		return -ENAMETOOLONG;
	int rc = maildir_mkdir(md->root);
	for (size_t i = 0; rc == 0 && i < sizeof(subs) / sizeof(subs[0]); i++) {
		rc = maildir_sub(md, subs[i], NULL, path);
		if (rc == 0)
			rc = maildir_mkdir(path);
	}
	if (rc < 0)
		return rc;
	maildir_sub(md, "new", NULL, path);
	md->new_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return md->new_fd < 0 ? -errno : 0;
}

void maildir_close(maildir_t *md)
{
	if (md->new_fd >= 0)
		close(md->new_fd);
	md->new_fd = -1;
}

/* True when cur/ holds name itself or "name:2,<flags>". */
static bool maildir_in_cur(const maildir_t *md, const char *name)
{
	char path[MAILDIR_PATH_MAX];
	if (maildir_sub(md, "cur", NULL, path) < 0)
		return false;
	DIR *d = opendir(path);
	if (!d)
		return false;
	size_t n = strlen(name);
	bool found = false;
	struct dirent *de;
	while (!found && (de = readdir(d)) != NULL)
		found = strncmp(de->d_name, name, n) == 0 &&
		        (de->d_name[n] == '\0' || de->d_name[n] == ':');
	closedir(d);
	return found;
}

static bool maildir_delivered(const maildir_t *md, const char *name)
{
	char path[MAILDIR_PATH_MAX];
	struct stat st;
	if (maildir_sub(md, "new", name, path) == 0 && stat(path, &st) == 0)
		return true;
	return maildir_in_cur(md, name);
}

/* Creates path with data, fsync'd. 0 or -errno (the file is then removed). */
static int maildir_write_file(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int rc = fileio_write_synced(fd, data, len);
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc < 0)
		unlink(path);
	return rc;
}

int maildir_deliver(maildir_t *md, const char *name, const char *data, size_t len)
{
	assert(md && name && *name && !strchr(name, '/'));
	char tmp[MAILDIR_PATH_MAX], dst[MAILDIR_PATH_MAX];
	if (maildir_delivered(md, name))
		return 1;
	int rc = maildir_sub(md, "tmp", name, tmp);
	if (rc == 0)
		rc = maildir_sub(md, "new", name, dst);
	if (rc == 0)
		rc = maildir_write_file(tmp, data, len);
	if (rc < 0)
		return rc;
	if (rename(tmp, dst) < 0) {
		rc = -errno;
		unlink(tmp);
		return rc;
	}
	if (fsync(md->new_fd) == 0)
		return 0;
	/* The name may not last, yet a retry would find it and call it delivered
	 * without another fsync: remove it, so the retry writes it anew. */
	rc = -errno;
	unlink(dst);
	return rc;
}

int maildir_hwm_read(const char *path, uint64_t *hwm)
{
	char buf[MAILDIR_HWM_BYTES_MAX + 1];
	*hwm = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	ssize_t n = read(fd, buf, MAILDIR_HWM_BYTES_MAX);
	int err = errno;
	close(fd);
	if (n < 0)
		return -err;
	buf[n] = '\0';
	char *end;
	errno = 0;
	unsigned long long v = strtoull(buf, &end, 10);
	if (n < 2 || buf[0] < '0' || buf[0] > '9' || errno || strcmp(end, "\n") != 0)
		return -EBADMSG;
	*hwm = v;
	return 0;
}

static int maildir_fsync_parent(const char *path)
{
	char dir[MAILDIR_PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	return fileio_fsync_dir(dir);
}

int maildir_hwm_write(const char *path, uint64_t hwm)
{
	char tmp[MAILDIR_PATH_MAX], text[MAILDIR_HWM_BYTES_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	int n = snprintf(text, sizeof(text), "%" PRIu64 "\n", hwm);
	int rc = maildir_write_file(tmp, text, (size_t)n);
	if (rc < 0)
		return rc;
	if (rename(tmp, path) < 0) {
		rc = -errno;
		unlink(tmp);
		return rc;
	}
	return maildir_fsync_parent(path);
}
