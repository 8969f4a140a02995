/*
 * jsbaseline.c - the engine's own publish -> ack latency, without esbank:
 * JetStream publishes of the sizes and at the rate the replicator makes
 * (docs/replication.md, "Figures"), so that esbank's replicated p99 can be
 * set beside what the nats-servers alone give on the same machine.
 *
 *   esbank-jsbaseline --nats URL[,URL...] [--stream NAME] [--replicas N]
 *                     [--rate MSGS_PER_S] [--bytes B] [--inflight W]
 *                     [--duration S] [--buffered] [--json]
 *
 * Makes the stream NAME afresh (subject NAME.log, file storage, N replicas,
 * described "esbank-jsbaseline"; a stream of that name this tool did not
 * make is left alone: exit 100), then publishes --rate messages per second of --bytes bytes each,
 * open loop (each at its scheduled time), asynchronously, at most --inflight
 * unacknowledged, each with the headers the replicator sends
 * (Nats-Msg-Id, Nats-Expected-Last-Sequence), for --duration seconds.
 * Prints the latency from each publish to its ack (p50, p99, p999, max)
 * and from its scheduled time to its ack (which adds any wait for room in
 * the window), and the rate achieved. Publishes go out at once (nats.c's
 * SendAsap, as the replicator sends them); --buffered leaves them to nats.c's
 * flusher thread instead, which waits about a millisecond to gather more.
 * Exit 0, 100 on wrong usage, 111 when NATS refuses or a publish fails.
 */
#include "version.h"

#include <errno.h>
#include <inttypes.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define JSB_MSGS_MAX 10000000 /* rate x duration */
#define JSB_BYTES_MAX (1024 * 1024)
#define JSB_INFLIGHT_MAX 4096
#define JSB_URLS_MAX 16
#define JSB_ID_BYTES 32
#define JSB_DRAIN_MS 10000 /* the last acks must come by then */
#define JSB_DESCRIPTION "esbank-jsbaseline" /* marks the streams this tool may delete */

static const char jsb_usage[] =
	"usage: esbank-jsbaseline --nats URL[,URL...] [--stream NAME] [--replicas N]\n"
	"                         [--rate MSGS_PER_S] [--bytes B] [--inflight W]\n"
	"                         [--duration S] [--buffered] [--json]\n"
	"JetStream publish -> ack latency at a fixed message rate (the engine's own\n"
	"figure beside scripts/bench --replicated). Defaults: --stream JSBASE\n"
	"--replicas 3 --rate 5000 --bytes 1300 --inflight 64 --duration 5.\n";

typedef struct {
	const char *urls, *stream;
	long replicas, rate, bytes, inflight, duration_s;
	bool json;
	bool buffered; /* --buffered: nats.c's flusher thread sends (no SendAsap) */
} jsb_opts_t;

typedef struct {
	pthread_mutex_t lock;
	pthread_cond_t room;
	long inflight, acked, errors;
	uint64_t *sched_ns, *sent_ns; /* per message */
	uint64_t *lat_ns, *wait_ns;   /* per acked message: publish -> ack, scheduled -> ack */
} jsb_state_t;

static jsb_state_t jsb;

static uint64_t jsb_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void jsb_sleep_until(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000u),
	                       .tv_nsec = (long)(ns % 1000000000u) };
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void jsb_ack_cb(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
	(void)js, (void)closure;
	const char *id = NULL;
	uint64_t now = jsb_now_ns();
	long i = -1;
	if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) == NATS_OK)
		i = strtol(id, NULL, 10);
	pthread_mutex_lock(&jsb.lock);
	if (pa && i >= 0) {
		jsb.lat_ns[jsb.acked] = now - jsb.sent_ns[i];
		jsb.wait_ns[jsb.acked] = now - jsb.sched_ns[i];
		jsb.acked++;
	} else {
		if (jsb.errors++ == 0)
			fprintf(stderr, "esbank-jsbaseline: publish %ld: %s\n", i,
			        pae && pae->ErrText ? pae->ErrText : "no ack");
	}
	jsb.inflight--;
	pthread_cond_signal(&jsb.room);
	pthread_mutex_unlock(&jsb.lock);
	natsMsg_Destroy(msg);
}

static int jsb_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double jsb_pct_ms(const uint64_t *v, long n, double p)
{
	if (n == 0)
		return 0;
	long k = (long)((double)n * p / 100.0);
	return (double)v[k < n ? k : n - 1] / 1e6;
}

static bool jsb_long(const char *s, long min, long max, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static int jsb_parse(int argc, char **argv, jsb_opts_t *o)
{
	*o = (jsb_opts_t){ .stream = "JSBASE", .replicas = 3, .rate = 5000, .bytes = 1300,
	                   .inflight = 64, .duration_s = 5 };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool ok = v != NULL;
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(jsb_usage, stdout);
			exit(0);
		} else if (!strcmp(a, "--version")) {
			puts("esbank-jsbaseline " ESBANK_VERSION);
			exit(0);
		} else if (!strcmp(a, "--json")) {
			o->json = true;
			continue;
		} else if (!strcmp(a, "--buffered")) {
			o->buffered = true;
			continue;
		} else if (!strcmp(a, "--nats") && v) {
			o->urls = v;
		} else if (!strcmp(a, "--stream") && v) {
			o->stream = v;
		} else if (!strcmp(a, "--replicas") && v) {
			ok = jsb_long(v, 1, 5, &o->replicas);
		} else if (!strcmp(a, "--rate") && v) {
			ok = jsb_long(v, 1, 1000000, &o->rate);
		} else if (!strcmp(a, "--bytes") && v) {
			ok = jsb_long(v, 1, JSB_BYTES_MAX, &o->bytes);
		} else if (!strcmp(a, "--inflight") && v) {
			ok = jsb_long(v, 1, JSB_INFLIGHT_MAX, &o->inflight);
		} else if (!strcmp(a, "--duration") && v) {
			ok = jsb_long(v, 1, 3600, &o->duration_s);
		} else {
			ok = false;
		}
		if (!ok) {
			fprintf(stderr, "esbank-jsbaseline: bad option or value: %s\n%s", a, jsb_usage);
			return -EINVAL;
		}
		i++;
	}
	if (!o->urls || o->rate * o->duration_s > JSB_MSGS_MAX) {
		fprintf(stderr, "esbank-jsbaseline: %s\n%s",
		        o->urls ? "rate x duration is over 10,000,000 messages" : "--nats is needed",
		        jsb_usage);
		return -EINVAL;
	}
	return 0;
}

static natsStatus jsb_connect(const jsb_opts_t *o, natsConnection **nc, jsCtx **js)
{
	char urls[1024];
	const char *list[JSB_URLS_MAX];
	int n = 0;
	snprintf(urls, sizeof(urls), "%s", o->urls);
	for (char *save = NULL, *u = strtok_r(urls, ",", &save); u && n < JSB_URLS_MAX;
	     u = strtok_r(NULL, ",", &save))
		list[n++] = u;
	natsOptions *no = NULL;
	natsStatus s = natsOptions_Create(&no);
	if (s == NATS_OK)
		s = natsOptions_SetServers(no, list, n);
	if (s == NATS_OK)
		s = natsOptions_SetSendAsap(no, !o->buffered);
	if (s == NATS_OK)
		s = natsConnection_Connect(nc, no);
	natsOptions_Destroy(no);
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.PublishAsync.AckHandler = jsb_ack_cb;
	jo.PublishAsync.MaxPending = o->inflight * 4;
	if (s == NATS_OK)
		s = natsConnection_JetStream(js, *nc, &jo);
	return s;
}

/* The stream, made afresh: one this tool made before (its description says
 * so) is deleted first; any other stream of that name is left alone:
 * -EEXIST. Its last sequence in *last. */
static int jsb_stream(const jsb_opts_t *o, jsCtx *js, uint64_t *last)
{
	char subject[256];
	snprintf(subject, sizeof(subject), "%s.log", o->stream);
	const char *subjects[] = { subject };
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus s = js_GetStreamInfo(&si, js, o->stream, NULL, &jerr);
	if (s == NATS_OK) {
		const char *d = si->Config ? si->Config->Description : NULL;
		bool ours = d && strcmp(d, JSB_DESCRIPTION) == 0;
		jsStreamInfo_Destroy(si);
		si = NULL;
		if (!ours)
			return -EEXIST;
		s = js_DeleteStream(js, o->stream, NULL, &jerr);
	} else if (jerr == JSStreamNotFoundErr) {
		s = NATS_OK;
	}
	jsStreamConfig sc;
	jsStreamConfig_Init(&sc);
	sc.Name = o->stream;
	sc.Description = JSB_DESCRIPTION;
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	sc.Storage = js_FileStorage;
	sc.Replicas = o->replicas;
	sc.MaxMsgSize = JSB_BYTES_MAX;
	if (s == NATS_OK)
		s = js_AddStream(&si, js, &sc, NULL, &jerr);
	if (s == NATS_OK)
		*last = si->State.LastSeq;
	jsStreamInfo_Destroy(si);
	return s == NATS_OK ? 0 : -EIO;
}

/* Publishes message i (waits for room in the window first). */
static natsStatus jsb_publish(const jsb_opts_t *o, jsCtx *js, long i, uint64_t expect,
                              const char *body)
{
	char subject[256], id[JSB_ID_BYTES], ex[JSB_ID_BYTES];
	snprintf(subject, sizeof(subject), "%s.log", o->stream);
	snprintf(id, sizeof(id), "%ld", i);
	snprintf(ex, sizeof(ex), "%" PRIu64, expect);
	pthread_mutex_lock(&jsb.lock);
	while (jsb.inflight >= o->inflight)
		pthread_cond_wait(&jsb.room, &jsb.lock);
	jsb.inflight++;
	jsb.sent_ns[i] = jsb_now_ns();
	pthread_mutex_unlock(&jsb.lock);
	natsMsg *m = NULL;
	natsStatus s = natsMsg_Create(&m, subject, NULL, body, (int)o->bytes);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(m, "Nats-Msg-Id", id);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(m, "Nats-Expected-Last-Sequence", ex);
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = 5000;
	if (s == NATS_OK)
		s = js_PublishMsgAsync(js, &m, &po);
	natsMsg_Destroy(m);
	return s;
}

static void jsb_report(const jsb_opts_t *o, long n, double secs)
{
	qsort(jsb.lat_ns, (size_t)jsb.acked, sizeof(uint64_t), jsb_cmp);
	qsort(jsb.wait_ns, (size_t)jsb.acked, sizeof(uint64_t), jsb_cmp);
	double rate = (double)jsb.acked / secs;
	long a = jsb.acked;
	if (o->json) {
		printf("{\"rate_target\": %ld, \"bytes\": %ld, \"inflight\": %ld, \"sent\": %ld, "
		       "\"acked\": %ld, \"errors\": %ld, \"rate\": %.0f, \"ack_ms\": {\"p50\": %.3f, "
		       "\"p99\": %.3f, \"p999\": %.3f, \"max\": %.3f}, \"sched_ack_ms\": {\"p50\": %.3f, "
		       "\"p99\": %.3f, \"max\": %.3f}}\n",
		       o->rate, o->bytes, o->inflight, n, a, jsb.errors, rate,
		       jsb_pct_ms(jsb.lat_ns, a, 50), jsb_pct_ms(jsb.lat_ns, a, 99),
		       jsb_pct_ms(jsb.lat_ns, a, 99.9), jsb_pct_ms(jsb.lat_ns, a, 100),
		       jsb_pct_ms(jsb.wait_ns, a, 50), jsb_pct_ms(jsb.wait_ns, a, 99),
		       jsb_pct_ms(jsb.wait_ns, a, 100));
		return;
	}
	printf("%ld messages of %ld bytes at %ld/s (achieved %.0f/s), at most %ld in flight; "
	       "%ld errors\n", a, o->bytes, o->rate, rate, o->inflight, jsb.errors);
	printf("publish -> ack:   p50 %.2f ms  p99 %.2f ms  p99.9 %.2f ms  max %.2f ms\n",
	       jsb_pct_ms(jsb.lat_ns, a, 50), jsb_pct_ms(jsb.lat_ns, a, 99),
	       jsb_pct_ms(jsb.lat_ns, a, 99.9), jsb_pct_ms(jsb.lat_ns, a, 100));
	printf("scheduled -> ack: p50 %.2f ms  p99 %.2f ms  max %.2f ms\n",
	       jsb_pct_ms(jsb.wait_ns, a, 50), jsb_pct_ms(jsb.wait_ns, a, 99),
	       jsb_pct_ms(jsb.wait_ns, a, 100));
}

static int jsb_run(const jsb_opts_t *o, jsCtx *js, uint64_t last)
{
	long n = o->rate * o->duration_s;
	char *body = malloc((size_t)o->bytes);
	jsb.sched_ns = calloc((size_t)n, sizeof(uint64_t));
	jsb.sent_ns = calloc((size_t)n, sizeof(uint64_t));
	jsb.lat_ns = calloc((size_t)n, sizeof(uint64_t));
	jsb.wait_ns = calloc((size_t)n, sizeof(uint64_t));
	if (!body || !jsb.sched_ns || !jsb.sent_ns || !jsb.lat_ns || !jsb.wait_ns) {
		fprintf(stderr, "esbank-jsbaseline: out of memory\n");
		return 111;
	}
	memset(body, 'x', (size_t)o->bytes);
	uint64_t t0 = jsb_now_ns() + 1000000u, step = 1000000000u / (uint64_t)o->rate;
	for (long i = 0; i < n; i++) {
		jsb.sched_ns[i] = t0 + (uint64_t)i * step;
		jsb_sleep_until(jsb.sched_ns[i]);
		if (jsb_publish(o, js, i, last + (uint64_t)i, body) != NATS_OK) {
			fprintf(stderr, "esbank-jsbaseline: publish %ld: %s\n", i,
			        nats_GetLastError(NULL));
			return 111;
		}
	}
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = JSB_DRAIN_MS;
	js_PublishAsyncComplete(js, &po);
	double secs = (double)(jsb_now_ns() - t0) / 1e9;
	jsb_report(o, n, secs);
	free(body);
	return jsb.errors ? 111 : 0;
}

int main(int argc, char **argv)
{
	jsb_opts_t o;
	if (jsb_parse(argc, argv, &o) < 0)
		return 100;
	pthread_mutex_init(&jsb.lock, NULL);
	pthread_cond_init(&jsb.room, NULL);
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	uint64_t last = 0;
	natsStatus s = jsb_connect(&o, &nc, &js);
	int st = s == NATS_OK ? jsb_stream(&o, js, &last) : -EIO;
	int rc = 111;
	if (st == -EEXIST) {
		fprintf(stderr, "esbank-jsbaseline: the stream %s exists and is not one this tool "
		        "made: choose another --stream\n", o.stream);
		rc = 100;
	} else if (st < 0) {
		fprintf(stderr, "esbank-jsbaseline: NATS: %s\n", nats_GetLastError(NULL));
	} else {
		rc = jsb_run(&o, js, last);
	}
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	return rc;
}
