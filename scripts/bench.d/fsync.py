#!/usr/bin/python3
"""fsync.py DIR: the disk's cost of making an append durable, as the logger
does it, in a file in DIR (removed after):
  - N appends of 4 KiB, each followed by fdatasync (the keys count, p50,
    p90, p99);
  - N appends of 128 bytes (about one transfer record), each followed by
    fdatasync: the bare append ("b128": {p50, p90, p99});
  - N writes of 128 bytes in place into a preallocated, zeroed file, each
    followed by fdatasync: no size change to commit ("b128_prealloc").
Prints one JSON object, latencies in microseconds.
"""
import json
import os
import sys
import time

N = 300
N_SMALL = 1000


def pick(lat, p):
    return round(lat[min(len(lat) - 1, int(p / 100.0 * len(lat)))], 1)


def probe(path, size, n, prealloc):
    """Sorted latencies of n writes of size bytes at offsets 0, size, ...,
    each followed by fdatasync; prealloc: into a zeroed, fsync'd file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    buf = os.urandom(size)
    lat = []
    try:
        if prealloc:
            os.write(fd, bytes(size * n))
            os.fsync(fd)
        for i in range(n):
            t = time.perf_counter()
            os.pwrite(fd, buf, i * size)
            os.fdatasync(fd)
            lat.append((time.perf_counter() - t) * 1e6)
    finally:
        os.close(fd)
        os.unlink(path)
    return sorted(lat)


def figures(lat):
    return {"count": len(lat), "p50": pick(lat, 50), "p90": pick(lat, 90), "p99": pick(lat, 99)}


def main():
    path = os.path.join(sys.argv[1], "fsync-probe")
    out = figures(probe(path, 4096, N, False))
    out["b128"] = figures(probe(path, 128, N_SMALL, False))
    out["b128_prealloc"] = figures(probe(path, 128, N_SMALL, True))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
