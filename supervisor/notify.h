/*
 * notify.h - systemd's readiness notification (sd_notify(3)) for a unit of
 * Type=notify: one datagram "READY=1" to the Unix socket NOTIFY_SOCKET
 * names (a path, or an abstract name when it starts with '@').
 */
#ifndef ESBANK_SUPERVISOR_NOTIFY_H
#define ESBANK_SUPERVISOR_NOTIFY_H

/*
 * Sends "READY=1" when NOTIFY_SOCKET is set; 0 (also when it is unset) or a
 * negative errno (the caller logs it: readiness is never a reason to stop).
 */
int notify_ready(void);

#endif
