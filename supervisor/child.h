/*
 * child.h - esbankd's exec wrapper mode, the first thing every child runs:
 *
 *     esbankd --exec-child NAME PPID -- PROG [ARGS...]
 *
 * It asks the kernel to SIGKILL it when its parent dies
 * (prctl(PR_SET_PDEATHSIG), kept across execve), checks that its parent is
 * still PPID (esbankd may have died before the prctl), then execs PROG with
 * ARGS; the pid stays the same. So no child outlives a killed esbankd, and
 * none holds the log's lock or a socket when the next esbankd starts.
 * libuv's uv_spawn() has no hook to run code between fork and exec; this is it.
 */
#ifndef ESBANK_SUPERVISOR_CHILD_H
#define ESBANK_SUPERVISOR_CHILD_H

#define CHILD_EXEC_FLAG "--exec-child"

/*
 * Runs the wrapper on main's argc/argv (argv[1] is CHILD_EXEC_FLAG). Returns
 * only on failure, with the exit code: EXIT_USAGE for a malformed command
 * line or a program that cannot be executed, EXIT_TEMPORARY otherwise.
 */
int child_exec(int argc, char **argv);

#endif
