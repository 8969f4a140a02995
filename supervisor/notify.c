/*
 * notify.c - sd_notify's READY=1 (see notify.h), written out rather than
 * linked from libsystemd: the protocol is one datagram on a Unix socket, and
 * libsystemd is not one of esbank's dependencies (a build without systemd,
 * or a test's own socket, works the same).
 */
#include "notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define NOTIFY_READY "READY=1"

/* Fills sa from NOTIFY_SOCKET's value; its length in *len. */
static int notify_address(const char *name, struct sockaddr_un *sa, socklen_t *len)
{
	size_t n = strlen(name);
	if (name[0] != '/' && name[0] != '@')
		return -EAFNOSUPPORT; /* vsock addresses (systemd 254+) are not ours */
	if (n < 2 || n > sizeof(sa->sun_path))
		return -EINVAL;
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, name, n);
	if (name[0] == '@')
		sa->sun_path[0] = '\0'; /* abstract: no terminating NUL counts */
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	return 0;
}

int notify_ready(void)
{
	const char *name = getenv("NOTIFY_SOCKET");
	if (!name || !*name)
		return 0;
	struct sockaddr_un sa;
	socklen_t len;
	int rc = notify_address(name, &sa, &len);
	if (rc < 0)
		return rc;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	ssize_t n = sendto(fd, NOTIFY_READY, strlen(NOTIFY_READY), MSG_NOSIGNAL,
	                   (const struct sockaddr *)&sa, len);
	rc = n < 0 ? -errno : 0;
	close(fd);
	return rc;
}
