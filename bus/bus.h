/*
 * bus.h - what every file of esbank-bus shares: its limits, the peer roles,
 * client references and the resolved event. No state lives here.
 */
#ifndef ESBANK_BUS_BUS_H
#define ESBANK_BUS_BUS_H

#include "protocol.h"
#include "fifo.h"
#include "frame.h"

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define BUS_CLIENTS_MAX 1024              /* connected clients */
#define BUS_CLIENT_INFLIGHT_MAX 8192      /* requests in flight per client */
#define BUS_CLIENT_OUT_BYTES_MAX (64u << 20) /* replies queued for one client */
/*
 * Reply bytes queued for all clients together (--clients-out-bytes-max may
 * lower it): without it, 1024 clients that do not read could make the bus
 * hold 64 GiB. Past it the clients with the largest backlogs are dropped.
 */
#define BUS_CLIENTS_OUT_BYTES_TOTAL_MAX ((size_t)1 << 30)
#define BUS_CLIENTS_OUT_BYTES_TOTAL_MIN (FRAME_HEADER_BYTES + FRAME_BODY_MAX) /* one reply */
#define BUS_HELD_MAX 100000               /* requests held while recovering */
#define BUS_HOLD_MS_MAX 10000             /* then they get unavailable */
#define BUS_SUBSCRIBERS_MAX 256
#define BUS_READ_EVENTS_MAX 10000         /* events per logger read */
#define BUS_READ_BYTES_MAX (FRAME_BODY_MAX - 64 * 1024)
#define BUS_TICK_MS 500
#define BUS_MAIL_PENDING_MAX 100000       /* mails held for an absent mailer (then: the log) */
/*
 * Bytes of items in one batch message to a peer: a peer's frame may not
 * exceed FRAME_BODY_MAX either, and the message's own fields take < 256
 * bytes. A batch about to grow past it is sent at once and a new one begun
 * (found by test_limits: 100,000 requests released after recovery went to
 * the resolver as one 8 MB frame, which it refused, dropping the link).
 */
#define BUS_BATCH_BYTES_MAX (FRAME_BODY_MAX - 256)
#define BUS_BATCH_ITEM_OVERHEAD 32        /* an item's map, keys and headers */
#define BUS_HASH_HEX_BYTES (2 * 32 + 1)   /* a chain hash in hex, with its NUL */

typedef struct hub hub_t;

/* The peers; the replicator's link runs only when the role is not single. */
typedef enum {
	PEER_RESOLVER,
	PEER_LOGGER,
	PEER_SNAPSHOTTER,
	PEER_MAILER,
	PEER_REPLICATOR,
	PEER_COUNT
} peer_role_t;

/* A peer's name: its socket is RUN/<name>.sock; log lines and figures use it. */
static inline const char *peer_name(peer_role_t role)
{
	switch (role) {
	case PEER_RESOLVER: return PEER_ROLE_RESOLVER;
	case PEER_LOGGER: return PEER_ROLE_LOGGER;
	case PEER_SNAPSHOTTER: return PEER_ROLE_SNAPSHOTTER;
	case PEER_MAILER: return PEER_ROLE_MAILER;
	case PEER_REPLICATOR: return PEER_ROLE_REPLICATOR;
	default: return "?";
	}
}

/* A client reference that survives the client: slot + generation. */
typedef struct {
	uint32_t slot;
	uint64_t gen;
} client_ref_t;

/* A resolved event not yet durable, or a mail held for the mailer. */
typedef struct {
	uint64_t seq;
	bus_bytes_t ev;
	bus_bytes_t mail; /* p == NULL: sends no mail */
} pending_event_t;

/* Wall-clock milliseconds (uptime, hold deadlines). */
static inline uint64_t bus_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#endif
