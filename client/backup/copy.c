/* copy.c - the plain files of a data directory, copied durably (see copy.h). */
#include "copy.h"

#include "fileio.h"
#include "keystore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define COPY_TREE_FDS_MAX 16

int copy_join(char out[COPY_PATH_MAX], const char *dir, const char *name)
{
	int n = snprintf(out, COPY_PATH_MAX, "%s/%s", dir, name);
	return n < 0 || n >= COPY_PATH_MAX ? -ENAMETOOLONG : 0;
}

static int copy_fd(int in, int out)
{
	char buf[COPY_CHUNK_BYTES];

	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return fsync(out) < 0 ? -errno : 0;
		int rc = fileio_write_all(out, buf, (size_t)n);
		if (rc)
			return rc;
	}
}

int copy_file(const char *from, const char *to)
{
	struct stat st;
	int in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	int rc = fstat(in, &st) < 0 ? -errno : S_ISREG(st.st_mode) ? 0 : -EINVAL;
	if (rc) {
		close(in);
		return rc;
	}
	int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 07777);
	if (out < 0) {
		rc = -errno;
		close(in);
		return rc;
	}
	rc = copy_fd(in, out);
	close(in);
	if (close(out) < 0 && rc == 0)
		rc = -errno;
	return rc;
}

/* Copies dir/name into to/name when present; *copied tells. */
static int copy_if_there(const char *from, const char *to, const char *name, bool *copied,
			 char path[COPY_PATH_MAX])
{
	char dst[COPY_PATH_MAX];

	*copied = false;
	if (copy_join(path, from, name) || copy_join(dst, to, name))
		return -ENAMETOOLONG;
	int rc = copy_file(path, dst);
	if (rc == -ENOENT)
		return 0;
	*copied = rc == 0;
	return rc;
}

int copy_dir_files(const char *from, const char *to, size_t *n, char path[COPY_PATH_MAX])
{
	char dst[COPY_PATH_MAX];
	struct dirent *de;
	int rc = 0;

	snprintf(path, COPY_PATH_MAX, "%s", to);
	if (mkdir(to, 0700) < 0 && errno != EEXIST)
		return -errno;
	snprintf(path, COPY_PATH_MAX, "%s", from);
	DIR *d = opendir(from);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (copy_join(path, from, de->d_name) || copy_join(dst, to, de->d_name)) {
			rc = -ENAMETOOLONG;
			break;
		}
		rc = copy_file(path, dst);
		if (rc == 0)
			(*n)++;
		else if (rc == -ENOENT || rc == -EINVAL) /* gone meanwhile, or not a file */
			rc = 0;
	}
	closedir(d);
	if (rc == 0)
		rc = fileio_fsync_dir(to);
	return rc;
}

static int copy_mail(const char *from, const char *to, copy_count_t *count,
		     char path[COPY_PATH_MAX])
{
	char src[COPY_PATH_MAX], dst[COPY_PATH_MAX], a[COPY_PATH_MAX], b[COPY_PATH_MAX];
	bool copied;
	int rc;

	if (copy_join(src, from, "mail") || copy_join(dst, to, "mail"))
		return -ENAMETOOLONG;
	if (access(src, F_OK) < 0)
		return 0;
	snprintf(path, COPY_PATH_MAX, "%s", dst);
	if (mkdir(dst, 0700) < 0)
		return -errno;
	/* hwm first: the mailer only moves it forward, so the copy never claims
	 * mail that the queue copied after it lacks. */
	const char *files[] = { "hwm", "addresses" };
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if ((rc = copy_if_there(src, dst, files[i], &copied, path)) < 0)
			return rc;
		count->files += copied;
	}
	const char *boxes[] = { "queue", "dead" };
	for (size_t i = 0; i < sizeof(boxes) / sizeof(boxes[0]); i++) {
		size_t n = 0;
		if (copy_join(a, src, boxes[i]) || copy_join(b, dst, boxes[i]))
			return -ENAMETOOLONG;
		if ((rc = copy_dir_files(a, b, &n, path)) < 0)
			return rc;
		count->files += n;
		count->mails += n;
	}
	return fileio_fsync_dir(dst);
}

int copy_plain(const char *from, const char *to, copy_count_t *count,
	       char path[COPY_PATH_MAX])
{
	int rc = copy_mail(from, to, count, path);
	if (rc == 0)
		rc = copy_if_there(from, to, "http.secret", &count->secret, path);
	count->files += count->secret;
	if (rc == 0)
		rc = fileio_fsync_dir(to);
	return rc;
}

int copy_keys(const char *from, const char *to, char path[COPY_PATH_MAX])
{
	bool copied;
	int rc = copy_if_there(from, to, KEYSTORE_FILE, &copied, path);
	return rc == 0 ? fileio_fsync_dir(to) : rc;
}

static int copy_remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return (flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 ? -errno : 0;
}

int copy_remove_tree(const char *dir)
{
	int rc = nftw(dir, copy_remove_one, COPY_TREE_FDS_MAX, FTW_DEPTH | FTW_PHYS);
	return rc < 0 ? -errno : rc;
}
