/* main.c - esbank-mailer: options, then mailer_run(). */
#include "config.h"
#include "diag.h"
#include "mailer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
	"usage: esbank-mailer [--data DIR] [--run DIR] [--public-url URL] [--from ADDR]\n"
	"                     [--mail maildir|mailgun|SMTP-URL] [OPTIONS]\n"
	"\n"
	"Takes the mail of durable events from esbank-bus on RUN/mailer.sock, spools\n"
	"each one durably in DATA/mail/queue/ and delivers it: into the Maildir\n"
	"DATA/mail/outbox (the default), through Mailgun's HTTP API (when\n"
	"MAILGUN_API_PRIVATE_KEY and MAILGUN_DOMAIN are set), or to an SMTP server\n"
	"(--mail smtp://host:port or ESBANK_SMTP_URL). Failed deliveries are retried\n"
	"with exponential back-off; permanent failures go to DATA/mail/dead/.\n"
	"SIGHUP rescans DATA/mail/queue/ (for mails re-queued by `esbank mail`).";

static config_opt_t mailer_opts[] = {
	{ .name = "data", .env = "ESBANK_DATA", .def = "./var/data", .help = "data directory" },
	{ .name = "run", .env = "ESBANK_RUN", .def = "./var/run",
	  .help = "run directory (sockets)" },
	{ .name = "public-url", .env = "ESBANK_PUBLIC_URL", .def = "http://127.0.0.1:4000",
	  .help = "base URL of the verification link" },
	{ .name = "from", .env = "ESBANK_MAIL_FROM", .def = "esbank <noreply@localhost>",
	  .help = "From header of every mail" },
	{ .name = "mail", .env = "ESBANK_MAIL",
	  .help = "transport: maildir, mailgun or an smtp(s):// URL (default: smtp when "
	          "ESBANK_SMTP_URL is set, else mailgun when MAILGUN_* are set, else maildir)" },
	{ .name = "smtp-url", .env = "ESBANK_SMTP_URL", .help = "SMTP server, smtp://host:port" },
	{ .name = "starttls", .env = "ESBANK_SMTP_STARTTLS", .def = "off",
	  .help = "SMTP STARTTLS: off, try or required" },
	{ .name = "mailgun-domain", .env = "MAILGUN_DOMAIN", .help = "Mailgun sending domain" },
	{ .name = "mailgun-base", .env = "MAILGUN_API_BASE", .def = "https://api.mailgun.net",
	  .help = "Mailgun API base URL (the key comes from MAILGUN_API_PRIVATE_KEY only)" },
	{ .name = "retry-min-ms", .env = "ESBANK_MAIL_RETRY_MIN_MS",
	  .def = MAILER_RETRY_MIN_MS_DEFAULT, .help = "first retry delay (jittered 50..100%)" },
	{ .name = "retry-max-ms", .env = "ESBANK_MAIL_RETRY_MAX_MS",
	  .def = MAILER_RETRY_MAX_MS_DEFAULT, .help = "longest retry delay" },
	{ .name = "max-age-ms", .env = "ESBANK_MAIL_MAX_AGE_MS",
	  .def = MAILER_MAX_AGE_MS_DEFAULT, .help = "a mail still failing this long is dead" },
	{ .name = "rescan-ms", .env = "ESBANK_MAIL_RESCAN_MS", .def = MAILER_RESCAN_MS_DEFAULT,
	  .help = "period of the queue directory rescan (0: only on SIGHUP)" },
	{ .name = "inflight", .env = "ESBANK_MAIL_INFLIGHT", .def = MAILER_INFLIGHT_DEFAULT,
	  .help = "deliveries in flight at once" },
	{ 0 },
};

/* Chooses the transport from --mail, else from which variables are set. */
static int main_transport(transport_config_t *t)
{
	const char *mail = config_get(mailer_opts, "mail");
	t->smtp_url = config_get(mailer_opts, "smtp-url");
	t->mailgun_key = getenv("MAILGUN_API_PRIVATE_KEY");
	t->mailgun_domain = config_get(mailer_opts, "mailgun-domain");
	t->mailgun_base = config_get(mailer_opts, "mailgun-base");
	t->starttls = config_get(mailer_opts, "starttls");
	if (!mail || !*mail)
		mail = t->smtp_url && *t->smtp_url ? "smtp"
		       : t->mailgun_key && *t->mailgun_key && t->mailgun_domain ? "mailgun"
		                                                               : "maildir";
	if (strncmp(mail, "smtp://", 7) == 0 || strncmp(mail, "smtps://", 8) == 0)
		t->smtp_url = mail, mail = "smtp";
	if (strcmp(mail, "maildir") == 0)
		t->kind = TRANSPORT_MAILDIR;
	else if (strcmp(mail, "mailgun") == 0)
		t->kind = TRANSPORT_MAILGUN;
	else if (strcmp(mail, "smtp") == 0 && t->smtp_url)
		t->kind = TRANSPORT_SMTP;
	else {
		diag_error("--mail is maildir, mailgun or an smtp:// URL, not '%s'", mail);
		return -EINVAL;
	}
	return 0;
}

static int main_queue(queue_config_t *q)
{
	uint64_t inflight;
	if (config_u64(mailer_opts, "retry-min-ms", &q->retry_min_ms) < 0 ||
	    config_u64(mailer_opts, "retry-max-ms", &q->retry_max_ms) < 0 ||
	    config_u64(mailer_opts, "max-age-ms", &q->max_age_ms) < 0 ||
	    config_u64(mailer_opts, "rescan-ms", &q->rescan_ms) < 0 ||
	    config_u64(mailer_opts, "inflight", &inflight) < 0)
		return -EINVAL;
	q->inflight_max = inflight > MAILER_INFLIGHT_MAX ? 0 : (uint32_t)inflight;
	return 0;
}

int main(int argc, char **argv)
{
	int rc = config_parse_options(mailer_opts, argc, argv, USAGE);
	if (rc != CONFIG_CONTINUE)
		return rc;
	static mailer_config_t cfg;
	cfg.data_dir = config_get(mailer_opts, "data");
	cfg.run_dir = config_get(mailer_opts, "run");
	cfg.public_url = config_get(mailer_opts, "public-url");
	cfg.from = config_get(mailer_opts, "from");
	cfg.transport.from = cfg.from;
	if (main_transport(&cfg.transport) < 0 || main_queue(&cfg.queue) < 0)
		return EXIT_USAGE;
	return mailer_run(&cfg);
}
