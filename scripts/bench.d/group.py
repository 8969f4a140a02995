#!/usr/bin/python3
"""group.py LOG ESBANKD [ARGS...]: runs esbankd in the foreground for
scripts/bench and writes each line it prints to LOG, prefixed with the
seconds since esbankd was started (monotonic clock, 6 decimals), so that
scripts/bench can time start -> live, replay and snapshot lines. SIGTERM and
SIGINT are passed on to esbankd; exits with its status.
"""
import os
import signal
import subprocess
import sys
import time


def main():
    log_path, argv = sys.argv[1], sys.argv[2:]
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=False)

    def forward(signum, _frame):
        try:
            p.send_signal(signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    with open(log_path, "w", buffering=1) as log:
        log.write("%.6f group.py: started %s (pid %d)\n" % (0.0, " ".join(argv), p.pid))
        for raw in p.stdout:
            t = time.monotonic() - t0
            log.write("%.6f %s\n" % (t, raw.decode("utf-8", "replace").rstrip("\n")))
    rc = p.wait()
    with open(log_path, "a") as log:
        log.write("%.6f group.py: esbankd exited with %d\n" % (time.monotonic() - t0, rc))
    sys.exit(rc if rc >= 0 else 128 - rc)


if __name__ == "__main__":
    main()
