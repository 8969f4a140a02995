/* child.c - the exec wrapper that ties a child's life to esbankd's (see child.h). */
#include "child.h"
#include "diag.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

/* argv: esbankd --exec-child NAME PPID -- PROG [ARGS...] */
#define CHILD_ARG_NAME 2
#define CHILD_ARG_PPID 3
#define CHILD_ARG_DASHES 4
#define CHILD_ARG_PROG 5

int child_exec(int argc, char **argv)
{
	if (argc <= CHILD_ARG_PROG || strcmp(argv[CHILD_ARG_DASHES], "--") != 0) {
		diag_error("usage: esbankd " CHILD_EXEC_FLAG " NAME PPID -- PROG [ARGS...]");
		return EXIT_USAGE;
	}
	const char *name = argv[CHILD_ARG_NAME];
	char *end;
	long ppid = strtol(argv[CHILD_ARG_PPID], &end, 10);
	if (*end || ppid <= 1) {
		diag_error(CHILD_EXEC_FLAG ": bad parent pid '%s'", argv[CHILD_ARG_PPID]);
		return EXIT_USAGE;
	}
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) {
		diag_error("%s: prctl(PR_SET_PDEATHSIG): %s", name, strerror(errno));
		return EXIT_TEMPORARY;
	}
	/* After the prctl: a parent that died before it would go unnoticed. */
	if (getppid() != (pid_t)ppid) {
		diag_error("%s: esbankd (pid %ld) is gone: not starting", name, ppid);
		return EXIT_TEMPORARY;
	}
	execv(argv[CHILD_ARG_PROG], argv + CHILD_ARG_PROG);
	int err = errno;
	diag_error("%s: cannot run %s: %s", name, argv[CHILD_ARG_PROG], strerror(err));
	return err == ENOENT || err == EACCES || err == ENOEXEC ? EXIT_USAGE : EXIT_TEMPORARY;
}
