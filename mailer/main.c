/* main.c - esbank-mailer: options, then mailer_run(). */
#include "config.h"
#include "log.h"
#include "mailer.h"

#include <stdlib.h>

static const char USAGE[] =
	"usage: esbank-mailer [--data DIR] [--run DIR] [--public-url URL] [--from ADDR]\n"
	"\n"
	"Takes the mail of durable events from esbank-bus on RUN/mailer.sock and\n"
	"writes each one as an RFC 5322 message into the Maildir DATA/mail/outbox.";

int main(int argc, char **argv)
{
	config_opt_t opts[] = {
		{ .name = "data", .env = "ESBANK_DATA", .def = "./var/data",
		  .help = "data directory" },
		{ .name = "run", .env = "ESBANK_RUN", .def = "./var/run",
		  .help = "run directory (sockets)" },
		{ .name = "public-url", .env = "ESBANK_PUBLIC_URL", .def = "http://127.0.0.1:4000",
		  .help = "base URL of the verification link" },
		{ .name = "from", .env = "ESBANK_MAIL_FROM", .def = "esbank <noreply@localhost>",
		  .help = "From header of every mail" },
		{ 0 },
	};
	int npos = 0;
	int rc = config_parse(opts, argc, argv, USAGE, &npos);
	if (rc == 1)
		return 0;
	if (rc < 0)
		return EXIT_USAGE;
	if (npos > 0) {
		log_error("unexpected argument '%s' (see --help)", argv[0]);
		return EXIT_USAGE;
	}
	mailer_config_t cfg = {
		.data_dir = config_get(opts, "data"),
		.run_dir = config_get(opts, "run"),
		.public_url = config_get(opts, "public-url"),
		.from = config_get(opts, "from"),
	};
	return mailer_run(&cfg);
}
