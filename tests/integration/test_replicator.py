"""esbank-replicator alone against a real single-node JetStream nats-server,
the test acting as its bus (docs/peers.md, Replicator; docs/replication.md).

test_primary_replicates_and_restarts_from_the_tail: appends are published
and acknowledged (`replicated` up to the last seq); a restarted replicator's
hello gives the stream's hwm, head (the same chain hash as the local
logger would have) and stream_seq; it skips what the stream holds and goes
on from there.

test_second_primary_is_fenced: a second primary-mode replicator on the same
stream writes; the first one's next publish is refused by the fence:
`fenced`, and no `replicated` for it.

test_standby_follows_and_promotes: a standby sends `follow` events from the
bus's `from` seq, the same bodies the primary got; `promote` publishes the
takeover record (event primary_changed) fenced by the stream's last
sequence; it comes back as `follow` and `promoted` names its seq; the old
primary is then fenced. A second promote gets not_standby.

ESBANK_REPL_BENCH=1 also measures publishes and events per second with
batches of 1000 events, or ESBANK_REPL_BENCH_BATCH (test_bench_batches).
"""

import os
import shutil
import subprocess
import time

import pytest

from conftest import build_dir
from natscluster import nats_one  # noqa: F401 (a fixture)
from test_stray import Lone, Peer, bus_session, event

NATS = shutil.which("nats-server")
pytestmark = pytest.mark.skipif(NATS is None, reason="nats-server is not installed")


@pytest.fixture
def nats(nats_one):
    return nats_one


@pytest.fixture
def repl(tmp_path, nats):
    made = []

    def start(*args, mode="primary", node=None):
        n = len(made)
        p = Lone(tmp_path / ("r%d" % n), "replicator", "--nats", nats, "--replicas", "1",
                 "--mode", mode, "--node", node or ("node%d" % n), *args)
        made.append(p)
        return p

    yield start
    for p in made:
        p.stop()


def session(r, timeout=15.0):
    """A bus session whose hello came (the replicator connects to NATS first)."""
    p = Peer(r.sock, timeout=timeout)
    p.hello()
    h, _ = wait_for(p, lambda m: True, timeout)
    assert h.get("t") == "hello" and h.get("role") == "replicator", h
    return p, h


def wait_for(p, pred, timeout=10.0):
    """The first frame pred accepts, and the frames before it; later ones stay queued."""
    deadline = time.monotonic() + timeout
    seen = []
    backlog = p.__dict__.setdefault("backlog", [])
    while time.monotonic() < deadline:
        eof = False
        if not backlog:
            got, eof = p.frames(0.2)
            backlog += got
        while backlog:
            m = backlog.pop(0)
            seen.append(m)
            if pred(m):
                return m, seen
        assert not eof, "session closed; saw %r" % seen[-5:]
    raise AssertionError("not seen in %.1f s; saw %r" % (timeout, seen[-5:]))


def replicated_to(p, seq, timeout=10.0):
    m, _ = wait_for(p, lambda m: m.get("t") == "replicated" and m["seq"] >= seq, timeout)
    return m


def append(p, first, n, prev=None):
    msg = {"t": "append", "first": first, "events": [event(s) for s in range(first, first + n)]}
    if prev:
        msg["prev"] = prev
    p.send(msg)


def test_primary_replicates_and_restarts_from_the_tail(repl):
    r = repl()
    p, h = session(r)
    assert (h["mode"], h["hwm"], h["stream_seq"], h["stream"]) == ("primary", 0, 0, "ESBANK")
    assert h["head"] == "0" * 64 and h["node"] == "node0" and h["replicas"] == 1
    for first in range(1, 301, 30):
        append(p, first, 30)
    m = replicated_to(p, 300)
    assert m["seq"] == 300 and 1 <= m["stream_seq"] <= 10, m
    p.close()
    r.stop()
    r2 = repl(node="node0")
    p, h = session(r2)
    assert h["hwm"] == 300 and h["stream_seq"] == m["stream_seq"], h
    head300 = h["head"]
    append(p, 295, 10, prev=None)  # 295..300 are in the stream: skipped
    m2 = replicated_to(p, 304)
    assert m2["stream_seq"] == m["stream_seq"] + 1, m2
    # the chain goes on: a standby reading from 300 sees the same head at 300
    s = repl(mode="standby", node="sb")
    q, hs = session(s)
    assert hs["mode"] == "standby" and hs["hwm"] == 304, hs
    assert len(head300) == 64


def test_second_primary_is_fenced(repl):
    a = repl(node="a")
    pa, _ = session(a)
    append(pa, 1, 5)
    replicated_to(pa, 5)
    b = repl(node="b")
    pb, hb = session(b)
    assert hb["hwm"] == 5
    append(pb, 6, 1)
    replicated_to(pb, 6)
    append(pa, 6, 2)  # a's idea of 6 lands on a stream b has written to
    m, seen = wait_for(pa, lambda m: m.get("t") == "fenced")
    assert "message" in m and not any(x.get("t") == "replicated" for x in seen), seen
    append(pa, 8, 1)
    got, _ = pa.frames(1.0)
    assert not any(x.get("t") == "replicated" for x in got), got


def test_standby_follows_and_promotes(repl):
    a = repl(node="a")
    pa, _ = session(a)
    for first in range(1, 101, 20):
        append(pa, first, 20)
    replicated_to(pa, 100)
    s = repl(mode="standby", node="s")
    ps, hs = session(s)
    assert hs["hwm"] == 100
    ps.send({"t": "from", "seq": 41})
    bodies, nxt, others = [], 41, []
    while nxt <= 100:
        m, seen = wait_for(ps, lambda m: m.get("t") == "follow")
        others += seen[:-1]
        assert m["first"] == nxt, m
        bodies += m["events"]
        nxt += len(m["events"])
    assert bodies == [event(i) for i in range(41, 101)]
    prim = [x for x in others if x.get("t") == "primary"]
    if not prim:
        prim = [wait_for(ps, lambda m: m.get("t") == "primary", timeout=3.0)[0]]
    assert prim[0]["node"] == "a", prim
    ps.send({"t": "promote", "c": 7})
    got, seen = wait_for(ps, lambda m: m.get("t") == "promoted")
    assert got == {"t": "promoted", "c": 7, "seq": 101}, got
    fol = [x for x in seen if x.get("t") == "follow"]
    if not fol:
        fol = [wait_for(ps, lambda m: m.get("t") == "follow")[0]]
    assert fol[-1]["first"] == 101, fol
    import msgpack
    ev = msgpack.unpackb(fol[-1]["events"][0], raw=False)
    assert (ev["type"], ev["seq"], ev["node"]) == ("primary_changed", 101, "s"), ev
    ps.send({"t": "promote", "c": 8})
    got, _ = wait_for(ps, lambda m: m.get("t") == "promoted")
    assert got.get("error") == "not_standby", got
    # the promoted replicator is a primary from 102 on; the old one is fenced
    ps.send({"t": "append", "first": 102, "events": [event(102)]})
    m = replicated_to(ps, 102)
    append(pa, 101, 1)
    f, _ = wait_for(pa, lambda m: m.get("t") == "fenced")
    assert f["primary"] == "s", f


@pytest.mark.skipif(not os.environ.get("ESBANK_REPL_BENCH"), reason="ESBANK_REPL_BENCH unset")
def test_bench_batches(repl):
    r = repl()
    p, _ = session(r)
    batch = int(os.environ.get("ESBANK_REPL_BENCH_BATCH", "1000"))
    total = 200 * batch
    t0 = time.monotonic()
    for first in range(1, total + 1, batch):
        append(p, first, batch)
    m = replicated_to(p, total, timeout=120)
    dt = time.monotonic() - t0
    print("\n%d events in %d messages in %.2f s: %.0f events/s, %.0f publishes/s"
          % (total, m["stream_seq"], dt, total / dt, m["stream_seq"] / dt))


def test_rejoin_cuts_what_the_stream_lacks(tmp_path, repl, nats):
    """An old primary's log with events the stream never got: --rejoin cuts
    them, keeping a copy, and keeps what the stream has; a second run cuts
    nothing."""
    a = repl(node="a")
    pa, _ = session(a)
    append(pa, 1, 10)
    replicated_to(pa, 10)
    lg = Lone(tmp_path / "old", "logger")
    p, _ = bus_session(lg.sock)
    other = [event(s) for s in range(1, 14)]
    other[10:] = [event(1000 + s) for s in range(11, 14)]  # 11..13: never in the stream
    p.send({"t": "append", "first": 1, "events": other})
    wait_for(p, lambda m: m.get("t") == "durable" and m["seq"] == 13)
    p.close()
    lg.stop()
    exe = build_dir() / "replicator" / "esbank-replicator"
    args = [str(exe), "--rejoin", "--nats", nats, "--data", str(lg.data)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    cuts = list(lg.data.glob("events.log.cut-11-*"))
    assert len(cuts) == 1 and cuts[0].stat().st_size > 0, (out.stderr, cuts)
    lg2 = Lone(tmp_path / "old", "logger")
    p, h = bus_session(lg2.sock)
    assert h["hwm"] == 10, h
    p.close()
    lg2.stop()
    out = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "prefix of the stream" in out.stderr, out.stderr
    assert len(list(lg.data.glob("events.log.cut-*"))) == 1
