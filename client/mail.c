/*
 * mail.c - `esbank mail` (see mail.h).
 *
 *   esbank [--json] mail [--data DIR]                   pending and dead mails
 *   esbank [--json] mail requeue ID... | --all [--data DIR]
 *
 * Human output: one line per mail, "pending" ones first:
 *   <state> <id> <type> <to> <accepted time> [attempts N: <reason>]
 * --json: one object per mail per line: {"id","state","type","to",
 * "subject","accepted"(ms)} plus "attempts" and "reason" when dead.
 * requeue prints "requeued <id>" per mail (--json: {"id","requeued":true}).
 */
#include "mail.h"
#include "spool.h"
#include "config.h"
#include "diag.h"
#include "output.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char MAIL_USAGE[] =
	"usage: esbank [--json] mail [--data DIR]\n"
	"       esbank [--json] mail requeue ID...|--all [--data DIR]\n"
	"\n"
	"Lists the mailer's pending and dead mails, read from DATA/mail (the mailer's\n"
	"spool), or moves dead mails back to the queue; the mailer takes them up within\n"
	"its rescan period (5 s by default) or at once on SIGHUP. ID is the mail's id\n"
	"(the seq of its event), as listed.";

void mail_list(FILE *f)
{
	fprintf(f, "  %-16s %-15s %s\n", "mail", "[requeue ID]", "list pending and dead mails; "
	        "re-queue dead ones (reads DATA)");
}

static void mail_print(const spool_entry_t *e, const char *state, bool json)
{
	const char *type = ledger_event_type_name(e->type);
	if (!json) {
		char t[OUTPUT_TIME_MAX];
		printf("%-7s %-8" PRIu64 " %-15s %s %s", state, e->seq, type, e->to,
		       output_time(e->accepted_ms, false, t));
		if (e->reason[0])
			printf(" attempts %" PRIu32 ": %s", e->attempts, e->reason);
		printf("\n");
		return;
	}
	printf("{\"id\":%" PRIu64 ",\"state\":\"%s\",\"type\":\"%s\",\"to\":", e->seq, state,
	       type);
	output_json_string(stdout, e->to, strlen(e->to));
	printf(",\"subject\":");
	output_json_string(stdout, e->subject, strlen(e->subject));
	printf(",\"accepted\":%" PRId64, e->accepted_ms);
	if (e->reason[0]) {
		printf(",\"attempts\":%" PRIu32 ",\"reason\":", e->attempts);
		output_json_string(stdout, e->reason, strlen(e->reason));
	}
	printf("}\n");
}

static int mail_show_box(spool_t *s, spool_box_t box, bool json)
{
	static spool_entry_t e;
	uint64_t *seqs;
	size_t n;
	int rc = spool_list(s, box, &seqs, &n);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		int r = spool_read(s, box, seqs[i], &e);
		if (r == -ENOENT)
			continue; /* sent meanwhile */
		if (r < 0)
			fprintf(stderr, "esbank: mail %" PRIu64 ": %s\n", seqs[i], strerror(-r));
		else
			mail_print(&e, box == SPOOL_DEAD ? "dead" : "pending", json);
	}
	free(seqs);
	return rc;
}

static int64_t mail_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int mail_requeue_one(spool_t *s, uint64_t seq, bool json)
{
	int rc = spool_requeue(s, seq, mail_now_ms());
	if (rc < 0) {
		fprintf(stderr, "esbank: mail %" PRIu64 ": %s\n", seq,
		        rc == -ENOENT ? "no such dead mail" : strerror(-rc));
		return rc == -ENOENT ? EXIT_USAGE : EXIT_TEMPORARY;
	}
	if (json)
		printf("{\"id\":%" PRIu64 ",\"requeued\":true}\n", seq);
	else
		printf("requeued %" PRIu64 "\n", seq);
	return 0;
}

static int mail_requeue(spool_t *s, int argc, char **argv, bool all, bool json)
{
	uint64_t *seqs = NULL;
	size_t n = 0;
	int code = 0;
	if (all && spool_list(s, SPOOL_DEAD, &seqs, &n) < 0)
		return EXIT_TEMPORARY;
	for (size_t i = 0; i < n; i++) {
		int r = mail_requeue_one(s, seqs[i], json);
		code = code ? code : r;
	}
	free(seqs);
	for (int i = 1; !all && i < argc; i++) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(argv[i], &end, 10);
		int r = (errno || *end || v == 0) ? EXIT_USAGE : mail_requeue_one(s, v, json);
		if (r == EXIT_USAGE && (errno || *end || v == 0))
			fprintf(stderr, "esbank: '%s' is not a mail id\n", argv[i]);
		code = code ? code : r;
	}
	return code;
}

int mail_main(const commands_global_t *g, int argc, char **argv)
{
	config_opt_t opts[] = {
		{ .name = "data", .env = "ESBANK_DATA", .def = "./var/data", .help = "data directory" },
		{ .name = "json", .is_flag = true, .help = "print JSON objects, one per line" },
		{ .name = "all", .is_flag = true, .help = "requeue: every dead mail" },
		{ 0 },
	};
	int npos = 0;
	int rc = config_parse(opts, argc, argv, MAIL_USAGE, &npos);
	if (rc == 1)
		return 0;
	bool requeue = npos > 0 && strcmp(argv[0], "requeue") == 0; /* positionals: argv[0..npos) */
	bool all = config_flag(opts, "all"), json = g->json || config_flag(opts, "json");
	if (rc < 0 || (npos > 0 && !requeue) || (requeue && (npos > 1) == all)) {
		fprintf(stderr, "%s\n", MAIL_USAGE);
		return EXIT_USAGE;
	}
	char *dir = config_path(config_get(opts, "data"), "mail");
	spool_t s;
	rc = dir ? spool_open(&s, dir) : -ENOMEM;
	if (rc < 0) {
		fprintf(stderr, "esbank: %s: %s\n", dir ? dir : "mail", strerror(-rc));
		free(dir);
		return EXIT_TEMPORARY;
	}
	int code = 0;
	if (requeue)
		code = mail_requeue(&s, npos, argv, all, json);
	else if (mail_show_box(&s, SPOOL_QUEUE, json) < 0 || mail_show_box(&s, SPOOL_DEAD, json) < 0)
		code = EXIT_TEMPORARY;
	spool_close(&s);
	free(dir);
	return code;
}
