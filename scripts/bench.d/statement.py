#!/usr/bin/python3
"""statement.py BUILD DIR [EVENTS] [RUNS]: the statement figure (issue 16).

Generates DIR/data/events.log with genlog.py: 1,000 accounts and EVENTS
(default 10,000,000) events in all, nearly all transfers between them, so each
account has about EVENTS / 500 entries. Starts BUILD/supervisor/esbankd on it
(--http off): the logger checks the log and builds its account index
(DATA/account.idx) from it, timed as start -> live; then stops it and starts
it again (the index is kept: start -> live with the index). Then asks RUNS
(default 20) times, over the socket, for statements of 10,000 entries of one
account, and prints the median and the slowest, in ms, from sending the
request to having the whole reply frame (not decoding it), after the very
first statement (printed alone: the index's pages are mapped in then) and
three more not counted:
  - the oldest 10,000 entries of the account (the whole history is walked);
  - the newest 10,000 (since the ts of the 10,000th entry from the end).
Prints JSON lines: {"figure": name, "value": v, "unit": u}. DIR must not
exist; it is removed at the end unless --keep.
"""
import json
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
ACCOUNTS = 1000
PAGE = 10000
READY_TIMEOUT_S = 1800


def say(name, value, unit):
    print(json.dumps({"figure": name, "value": value, "unit": unit}), flush=True)


class Conn:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.id = 0

    def _read(self, n):
        b = bytearray()
        while len(b) < n:
            c = self.s.recv(n - len(b))
            if not c:
                raise EOFError("the server closed the connection")
            b += c
        return bytes(b)

    def timed(self, op, **fields):
        """(reply, seconds from send to the whole frame received)."""
        self.id += 1
        body = msgpack.packb(dict(fields, op=op, id=self.id))
        t0 = time.perf_counter()
        self.s.sendall(struct.pack(">I", len(body)) + body)
        n = struct.unpack(">I", self._read(4))[0]
        raw = self._read(n)
        dt = time.perf_counter() - t0
        return msgpack.unpackb(raw, raw=False), dt


def start(build, data, run):
    """Starts esbankd; returns (process, seconds to live)."""
    r, w = os.pipe()
    t0 = time.monotonic()
    p = subprocess.Popen([os.path.join(build, "supervisor", "esbankd"), "--data", data,
                          "--run", run, "--http", "off", "--pwhash-cost", "min",
                          "--ready-fd", str(w)], pass_fds=(w,),
                         stdout=open(os.path.join(os.path.dirname(data), "esbankd.log"), "ab"),
                         stderr=subprocess.STDOUT)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        if not f.read(1):
            raise SystemExit("esbankd did not become ready (see esbankd.log)")
    return p, time.monotonic() - t0


def stop(p):
    p.send_signal(signal.SIGTERM)
    p.wait(120)


def runs(c, n, **fields):
    times, reply = [], None
    for _ in range(n):
        reply, dt = c.timed("statement", **fields)
        assert reply.get("ok"), reply
        times.append(dt * 1000)
    return reply, times


def main():
    args = [a for a in sys.argv[1:] if a != "--keep"]
    build, base = args[0], args[1]
    events = int(args[2]) if len(args) > 2 else 10_000_000
    nruns = int(args[3]) if len(args) > 3 else 20
    os.makedirs(base)
    data, run = os.path.join(base, "data"), os.path.join(base, "run")
    t0 = time.monotonic()
    subprocess.run([sys.executable, os.path.join(HERE, "genlog.py"), data, str(ACCOUNTS),
                    str(events - 2 * ACCOUNTS)], check=True, stdout=subprocess.DEVNULL)
    say("statement_genlog_seconds", round(time.monotonic() - t0, 1), "s")
    p, dt = start(build, data, run)
    say("statement_start_building_index_seconds", round(dt, 2), "s")
    stop(p)
    p, dt = start(build, data, run)
    say("statement_start_with_index_seconds", round(dt, 2), "s")
    say("statement_index_bytes", os.path.getsize(os.path.join(data, "account.idx")), "bytes")
    try:
        c = Conn(os.path.join(run, "bus.sock"))
        first, _ = c.timed("events", limit=1)
        account = first["events"][0]["account"]
        _, cold = runs(c, 1, account=account, limit=PAGE)
        say("statement_oldest_10000_first_ms", round(cold[0], 2), "ms")
        runs(c, 3, account=account, limit=PAGE)  # warm-up, not counted
        reply, oldest = runs(c, nruns, account=account, limit=PAGE)
        assert len(reply["entries"]) == PAGE and reply["more"], "the account has too few entries"
        say("statement_entries", len(reply["entries"]), "entries")
        say("statement_oldest_10000_median_ms", round(statistics.median(oldest), 2), "ms")
        say("statement_oldest_10000_max_ms", round(max(oldest), 2), "ms")
        # the newest PAGE entries: since the ts of the PAGE-th from the end
        seen, after = [], 0
        while True:
            r, _ = c.timed("statement", account=account, after_seq=after, limit=PAGE)
            seen += [e["ts"] for e in r["entries"]]
            if not r["more"]:
                break
            after = r["entries"][-1]["seq"]
        say("statement_account_entries", len(seen), "entries")
        reply, newest = runs(c, nruns, account=account, since=seen[-PAGE], limit=PAGE)
        say("statement_newest_10000_median_ms", round(statistics.median(newest), 2), "ms")
        say("statement_newest_10000_max_ms", round(max(newest), 2), "ms")
    finally:
        stop(p)
        if "--keep" not in sys.argv:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
