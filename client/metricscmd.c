/*
 * metricscmd.c - `esbank metrics`: one "metrics" request, its text printed as
 * it came (the Prometheus text format, common/figures.h).
 */
#include "metricscmd.h"

#include "msg.h"
#include "output.h"

#include <stdio.h>

#define METRICS_TIMEOUT_MS 5000 /* the bus answers within BUS_GATHER_WAIT_MS */

int metrics_run(call_t *call)
{
	msgpack_packer *pk;
	msgpack_object reply;
	int rc = call_begin(call, "metrics", false, 0, &pk);
	if (rc == 0)
		rc = call_finish(call, METRICS_TIMEOUT_MS, &reply);
	if (rc)
		return rc;
	if (call->json) {
		output_json_line(&reply, "id");
		return 0;
	}
	const char *text;
	size_t n;
	if (msg_get_str(&reply, "text", &text, &n) == 0)
		fwrite(text, 1, n, stdout);
	return 0;
}
