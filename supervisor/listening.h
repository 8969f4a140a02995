/*
 * listening.h - whether a child listens on a TCP socket yet, read from
 * /proc. esbankd counts the group live only once esbank-http holds its
 * listening socket: a probe that connects to the address would be answered
 * by whatever program already holds the port.
 */
#ifndef ESBANK_SUPERVISOR_LISTENING_H
#define ESBANK_SUPERVISOR_LISTENING_H

#include <stdbool.h>
#include <sys/types.h>

#define LISTENING_SOCKETS_MAX 64 /* of pid's sockets looked at; more are not */
#define LISTENING_LINE_BYTES_MAX 512

/*
 * True when pid has a TCP socket (IPv4 or IPv6) in the LISTEN state among
 * its first LISTENING_SOCKETS_MAX sockets: the inodes of /proc/PID/fd's
 * "socket:[N]" links, looked up in /proc/PID/net/tcp and tcp6 (state 0A).
 * False when it has none, or when pid or /proc cannot be read.
 */
bool listening_tcp(pid_t pid);

#endif
