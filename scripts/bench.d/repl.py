#!/usr/bin/python3
"""repl.py - the replicated figures of `scripts/bench --replicated`.

  repl.py lag OUT PRIMARY_RUN STANDBY_RUN STOPFILE
      samples `status` durable_seq of both groups every SAMPLE_S until
      STOPFILE exists; OUT (JSON): {"samples": n, "lag_ms": {"p50", "p99", "max"}},
      the lag of a primary sample (t, seq) being the time until the standby's
      first sample with durable_seq >= seq (resolution: SAMPLE_S).
  repl.py promote OUT RUN
      sends promote to RUN/bus.sock, then open_account until one is
      acknowledged; OUT: {"promote_ms", "first_ack_ms"} from the promote.
  repl.py killack OUT RUN ESBANKD_PID OTHER_RUN
      kill -9 of esbankd ESBANKD_PID and of every child in OTHER_RUN/*.pid,
      then open_account on RUN until acknowledged; OUT: {"first_ack_ms"}
      from the kill.
  repl.py table RESULTS [--doc FILE]
      prints the table of RESULTS/*.json and, with --doc, rewrites FILE's
      part between REPL_BEGIN and REPL_END.

The wire (docs/protocol.md): a 4-byte big-endian length, then a msgpack map.
"""
import json
import os
import signal
import socket
import struct
import sys
import time

import msgpack

SAMPLE_S = 0.02
CALL_TIMEOUT_S = 5.0
FIRST_ACK_TIMEOUT_S = 60.0
REPL_BEGIN = "<!-- replicated: begin (scripts/bench --replicated writes this) -->"
REPL_END = "<!-- replicated: end -->"


class Bus:
    def __init__(self, run):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(CALL_TIMEOUT_S)
        self.s.connect(os.path.join(run, "bus.sock"))
        self.buf = b""
        self.id = 0

    def call(self, op, **fields):
        self.id += 1
        body = msgpack.packb(dict(fields, op=op, id=self.id), use_bin_type=True)
        self.s.sendall(struct.pack(">I", len(body)) + body)
        while True:
            while len(self.buf) < 4 or len(self.buf) < 4 + struct.unpack(">I", self.buf[:4])[0]:
                chunk = self.s.recv(65536)
                if not chunk:
                    raise ConnectionError("bus closed")
                self.buf += chunk
            n = struct.unpack(">I", self.buf[:4])[0]
            msg, self.buf = msgpack.unpackb(self.buf[4:4 + n], raw=False), self.buf[4 + n:]
            if msg.get("id") == self.id:
                return msg


def durable(run):
    try:
        return Bus(run).call("status").get("durable_seq")
    except (OSError, ValueError):
        return None


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))] if xs else None


def lag(out, prim, stby, stopfile):
    ps, ss = [], []
    while not os.path.exists(stopfile):
        t = time.monotonic()
        a, b = durable(prim), durable(stby)
        if a is not None:
            ps.append((t, a))
        if b is not None:
            ss.append((time.monotonic(), b))
        time.sleep(SAMPLE_S)
    lags, j = [], 0
    for t, seq in ps:
        while j < len(ss) and (ss[j][0] < t or ss[j][1] < seq):
            j += 1
        if j < len(ss):
            lags.append((ss[j][0] - t) * 1000)
    json.dump({"samples": len(lags), "lag_ms": {"p50": pct(lags, 50), "p99": pct(lags, 99),
                                                "max": max(lags) if lags else None}},
              open(out, "w"))


def first_ack(run, t0):
    n = 0
    while time.monotonic() - t0 < FIRST_ACK_TIMEOUT_S:
        n += 1
        try:
            r = Bus(run).call("open_account", email="probe%d@example.com" % n,
                              password="probe-password-%d" % n)
            if r.get("ok"):
                return (time.monotonic() - t0) * 1000
        except (OSError, ValueError):
            pass
        time.sleep(0.005)
    raise SystemExit("repl.py: no acknowledgement on %s within %.0f s" % (run,
                                                                       FIRST_ACK_TIMEOUT_S))


def promote(out, run):
    t0 = time.monotonic()
    r = Bus(run).call("promote")
    if not r.get("ok"):
        raise SystemExit("repl.py: promote failed: %r" % r)
    p = (time.monotonic() - t0) * 1000
    json.dump({"promote_ms": p, "first_ack_ms": first_ack(run, t0)}, open(out, "w"))


def killack(out, run, esbankd, other_run):
    pids = [int(esbankd)]
    for f in os.listdir(other_run):
        if f.endswith(".pid"):
            try:
                pids.append(int(open(os.path.join(other_run, f)).read().split()[0]))
            except (OSError, ValueError, IndexError):
                pass
    t0 = time.monotonic()
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    json.dump({"first_ack_ms": first_ack(run, t0)}, open(out, "w"))


def bench_fig(res, name):
    return json.load(open(os.path.join(res, name + ".json")))


def fmt(x, f="%.0f"):
    return "-" if x is None else f % x


def table(res, doc=None):
    single, closed, opn = (bench_fig(res, n) for n in ("single-closed", "repl-closed",
                                                       "repl-open"))
    lagj = json.load(open(os.path.join(res, "repl-lag.json")))
    pro = json.load(open(os.path.join(res, "repl-promote.json")))
    auto = json.load(open(os.path.join(res, "repl-autopromote.json")))
    tput = lambda j: j.get("ops_per_s")  # noqa: E731
    lat = lambda j, p: (j.get("latency_us") or {}).get(p, 0) / 1000.0  # noqa: E731
    s, c = tput(single), tput(closed)
    rows = [
        ("replicated transfers/s, closed loop 4 x 256", ">= 100,000", fmt(c)
         + (" (%.0f%% of single-machine %s)" % (100.0 * c / s, fmt(s)) if s and c else "")),
        ("p99 at 50,000/s open loop", "<= 5 ms", fmt(lat(opn, "p99"), "%.2f ms")
         + " (achieved %s/s)" % fmt(tput(opn))),
        ("promote -> first ack", "<= 1 s", fmt(pro["first_ack_ms"], "%.0f ms")
         + " (promote reply %s)" % fmt(pro["promote_ms"], "%.0f ms")),
        ("primary killed -> first ack, --auto-promote 2", "<= 3 s",
         fmt(auto["first_ack_ms"], "%.0f ms")),
        ("standby lag under the closed loop, p99", "<= 100 ms",
         fmt(lagj["lag_ms"]["p99"], "%.0f ms") + " (p50 %s, max %s, %d samples)"
         % (fmt(lagj["lag_ms"]["p50"]), fmt(lagj["lag_ms"]["max"]), lagj["samples"])),
    ]
    lines = ["| figure | goal | measured |", "|---|---|---|"]
    lines += ["| %s | %s | %s |" % r for r in rows]
    cmds = open(os.path.join(res, "commands.txt")).read().strip().splitlines()
    text = "\n".join(lines)
    print(text)
    if doc:
        body = open(doc).read()
        block = "%s\n\n%s\n\nMeasured %s with `scripts/bench --replicated`; the commands:\n\n%s\n\n%s" % (
            REPL_BEGIN, text, time.strftime("%Y-%m-%d"),
            "\n".join("    " + l for l in cmds), REPL_END)
        if REPL_BEGIN in body:
            body = body[:body.index(REPL_BEGIN)] + block + body[body.index(REPL_END) + len(REPL_END):]
        else:
            body = body.rstrip("\n") + "\n\n## Replicated\n\n" + block + "\n"
        open(doc, "w").write(body)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "lag":
        lag(*args)
    elif cmd == "promote":
        promote(*args)
    elif cmd == "killack":
        killack(*args)
    elif cmd == "table":
        table(args[0], args[2] if len(args) > 2 and args[1] == "--doc" else None)
    else:
        raise SystemExit("repl.py: unknown command %s" % cmd)


if __name__ == "__main__":
    main()
