/*
 * history.c - the dispatch of the offline history tools (see history.h) to
 * replay.c, audit.c and whatif.c; what they share is in reading.c.
 */
#include "history.h"

#include "diag.h"

#include <string.h>

int history_run(const char *name, const config_opt_t *opts)
{
	bool json = config_flag(opts, "json");

	if (strcmp(name, "replay") == 0)
		return replay_run(opts, json);
	if (strcmp(name, "audit") == 0)
		return audit_run(opts, json);
	if (strcmp(name, "whatif") == 0)
		return whatif_run(opts, json);
	return EXIT_BUG;
}
