#!/usr/bin/python3
"""sampler.py OUT PID RUN: while process PID (an `esbank bench`) runs, writes
one JSON line to OUT every 0.2 s: the monotonic time, the machine's busy and
total CPU ticks (/proc/stat), and the CPU ticks (user + system) of PID and of
each program of the group whose pid is in RUN/<name>.pid. scripts/bench's
report takes the load phase's window from it: who used the CPUs, and how
much went to processes outside the benchmark.
"""
import json
import os
import sys
import time

PROGRAMS = ("bus", "resolver", "logger", "snapshotter", "mailer")


def ticks(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None, None
    rest = s[s.rindex(")") + 2:].split()
    return rest[0], int(rest[11]) + int(rest[12])  # state, utime + stime


def machine():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v[:8]) - idle, sum(v[:8])


def main():
    out, pid, run = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    pids = {}
    for name in PROGRAMS:
        try:
            with open(os.path.join(run, name + ".pid")) as f:
                pids[name] = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    pids["esbank bench"] = pid
    with open(out, "w") as f:
        while True:
            busy, total = machine()
            rec = {"t": time.monotonic(), "busy": busy, "total": total, "ticks": {}}
            alive = False
            for name, p in pids.items():
                state, t = ticks(p)
                if t is not None:
                    rec["ticks"][name] = t
                if p == pid:
                    alive = state is not None and state != "Z"
            if not alive:  # an exited process's times read as 0: keep the sample before
                break
            f.write(json.dumps(rec) + "\n")
            time.sleep(0.2)


if __name__ == "__main__":
    main()
