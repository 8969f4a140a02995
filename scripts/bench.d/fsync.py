#!/usr/bin/python3
"""fsync.py DIR: the disk's cost of making an append durable, as the logger
does it: N appends of 4 KiB to a file in DIR, each followed by fdatasync.
Prints one JSON object: count, p50/p90/p99 in microseconds. Removes its file.
"""
import json
import os
import sys
import time

N = 300


def main():
    path = os.path.join(sys.argv[1], "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    buf = os.urandom(4096)
    lat = []
    try:
        for i in range(N):
            t = time.perf_counter()
            os.pwrite(fd, buf, i * len(buf))
            os.fdatasync(fd)
            lat.append((time.perf_counter() - t) * 1e6)
    finally:
        os.close(fd)
        os.unlink(path)
    lat.sort()
    pick = lambda p: round(lat[min(len(lat) - 1, int(p / 100.0 * len(lat)))], 1)
    print(json.dumps({"count": N, "p50": pick(50), "p90": pick(90), "p99": pick(99)}))


if __name__ == "__main__":
    main()
