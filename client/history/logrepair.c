/*
 * logrepair.c - esbank log-repair (see logrepair.h): calls logfile_repair()
 * and says what it found, what it cut and where the copy is.
 */
#include "logrepair.h"

#include "diag.h"
#include "logfile.h"
#include "output.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define LOGREPAIR_DATA_DEFAULT "./var/data"

const config_opt_t logrepair_opts[] = {
	{ .name = "data", .env = "ESBANK_DATA", .def = LOGREPAIR_DATA_DEFAULT,
	  .help = "the data directory whose events.log is repaired" },
	{ .name = "dry-run", .is_flag = true, .help = "say what would be cut; change nothing" },
	{ 0 },
};

static void logrepair_print_json(const char *dir, bool dry_run, const logfile_repair_t *rp)
{
	printf("{\"log\":");
	output_json_string(stdout, dir, strlen(dir));
	printf(",\"dry_run\":%s,\"cut\":%s", dry_run ? "true" : "false", rp->cut ? "true" : "false");
	if (rp->cut) {
		const char *what = logfile_problem_text(rp->scan.problem);
		printf(",\"problem\":{\"seq\":%" PRIu64 ",\"offset\":%" PRIu64 ",\"what\":",
		       rp->scan.seq, rp->scan.offset);
		output_json_string(stdout, what, strlen(what));
		printf("},\"cut_offset\":%" PRIu64 ",\"cut_bytes\":%" PRIu64
		       ",\"first_cut_seq\":%" PRIu64 ",\"kept_last_seq\":%" PRIu64
		       ",\"header_rewritten\":%s,\"copy\":",
		       rp->cut_offset, rp->cut_bytes, rp->first_cut_seq, rp->kept_last_seq,
		       rp->header_rewritten ? "true" : "false");
		output_json_string(stdout, rp->copy_path, strlen(rp->copy_path));
	} else {
		printf(",\"last_seq\":%" PRIu64, rp->scan.last_seq);
	}
	printf("}\n");
}

static void logrepair_print_human(const char *dir, bool dry_run, const logfile_repair_t *rp)
{
	if (!rp->cut) {
		printf("%s/%s is whole to its end (seq %" PRIu64 "): nothing to cut.\n", dir,
		       LOGFILE_NAME, rp->scan.last_seq);
		return;
	}
	printf("%s/%s: %s at seq %" PRIu64 " (byte offset %" PRIu64 ").\n", dir, LOGFILE_NAME,
	       logfile_problem_text(rp->scan.problem), rp->scan.seq, rp->scan.offset);
	printf("%s %" PRIu64 " bytes at offset %" PRIu64 ": seq %" PRIu64 " and everything after "
	       "it; the log %s at seq %" PRIu64 ".\n", dry_run ? "Would cut" : "Cut",
	       rp->cut_bytes, rp->cut_offset, rp->first_cut_seq, dry_run ? "would end" : "ends",
	       rp->kept_last_seq);
	if (dry_run)
		printf("Nothing was changed (--dry-run).\n");
	else
		printf("Every byte cut is kept in %s\n", rp->copy_path);
}

static int logrepair_fail(const char *dir, int r, const logfile_repair_t *rp)
{
	if (r == -EAGAIN) {
		fprintf(stderr, "esbank log-repair: %s/%s is in use by a logger: stop the group "
		        "first\n", dir, LOGFILE_NAME);
		return EXIT_TEMPORARY;
	}
	if (r == -EBADMSG) {
		fprintf(stderr, "esbank log-repair: %s/%s: %s; not repaired\n", dir, LOGFILE_NAME,
		        logfile_problem_text(rp->scan.problem));
		return EXIT_USAGE;
	}
	fprintf(stderr, "esbank log-repair: %s/%s: %s%s\n", dir, LOGFILE_NAME, strerror(-r),
	        rp->cut ? " (the log was not changed)" : "");
	return r == -ENOENT ? EXIT_USAGE : EXIT_TEMPORARY;
}

int logrepair_run(const config_opt_t *opts, bool json)
{
	const char *dir = config_get(opts, "data");
	bool dry_run = config_flag(opts, "dry-run");
	logfile_repair_t rp;
	int r = logfile_repair(dir, dry_run, &rp);
	if (r < 0)
		return logrepair_fail(dir, r, &rp);
	if (json)
		logrepair_print_json(dir, dry_run, &rp);
	else
		logrepair_print_human(dir, dry_run, &rp);
	return 0;
}
