/*
 * main.c - esbank-http: the REST gateway in front of the bus. Parses the
 * options and hands over to gateway_run().
 */
#include "config.h"
#include "gateway.h"
#include "diag.h"

#include <signal.h>
#include <sodium.h>
#include <stdio.h>

static const char USAGE[] =
	"usage: esbank-http [--http ADDR] [--metrics ADDR] [--data DIR] [--run DIR]\n"
	"                   [--token-ttl SECONDS]\n"
	"\n"
	"The HTTP/JSON API of esbank. Serves the REST routes on ADDR and turns each\n"
	"request into a protocol request on RUN/bus.sock. Keeps its token secret in\n"
	"DATA/http.secret. Serves /metrics only on the --metrics address (none by\n"
	"default), never on the public one. Logs one line per request.";

int main(int argc, char **argv)
{
	config_opt_t opts[] = {
		{ .name = "http", .env = "ESBANK_HTTP", .def = "127.0.0.1:4000",
		  .help = "address to listen on, host:port" },
		{ .name = "metrics", .env = "ESBANK_HTTP_METRICS", .def = "",
		  .help = "address of the /metrics listener, host:port (empty: none)" },
		{ .name = "data", .env = "ESBANK_DATA", .def = "./var/data",
		  .help = "data directory (holds http.secret)" },
		{ .name = "run", .env = "ESBANK_RUN", .def = "./var/run",
		  .help = "run directory (holds bus.sock)" },
		{ .name = "token-ttl", .env = "ESBANK_TOKEN_TTL", .def = "3600",
		  .help = "seconds a login token stays valid" },
		{ 0 },
	};
	int npos = 0;
	int rc = config_parse(opts, argc, argv, USAGE, &npos);
	if (rc == 1)
		return 0;
	uint64_t ttl_s;
	if (rc < 0 || config_u64(opts, "token-ttl", &ttl_s) < 0)
		return EXIT_USAGE;
	if (npos > 0 || ttl_s == 0) {
		fprintf(stderr, "%s\n", npos > 0 ? "error: no arguments expected (see --help)"
		                                 : "error: --token-ttl must be at least 1");
		return EXIT_USAGE;
	}
	if (sodium_init() < 0) {
		diag_error("libsodium cannot start");
		return EXIT_TEMPORARY;
	}
	signal(SIGPIPE, SIG_IGN);
	gateway_opts_t o = {
		.http_addr = config_get(opts, "http"),
		.metrics_addr = config_get(opts, "metrics"),
		.data_dir = config_get(opts, "data"),
		.run_dir = config_get(opts, "run"),
		.token_ttl_s = ttl_s,
	};
	return gateway_run(&o);
}
