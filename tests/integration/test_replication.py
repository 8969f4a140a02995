"""Replication on a NATS JetStream cluster (issue 13, docs/replication.md):
a primary group publishes its log records to the stream, standby groups
follow it, `promote` takes over fenced by the stream's last sequence, an old
primary is fenced and rejoins as a standby.

Real processes only: a three-node nats-server cluster on loopback ports
(natscluster.py) and real esbank groups. Every test that needs
esbank-replicator skips, with the reason, while the build has none.
ESBANK_TEST_LONG=1 runs the failover under load for longer, with more
workers.
"""

import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import time

import msgpack
import pytest

import crashkit
from conftest import (OPENING_BALANCE, Group, build_dir, expect_err, expect_ok,  # noqa: F401
                      wait_for)
from esbank_proto import Client
from natscluster import NatsConn, nats_cluster  # noqa: F401 (the fixture)

LONG = os.environ.get("ESBANK_TEST_LONG") == "1"
STREAM = "ESBTEST"
LOG_SUBJECT = STREAM + ".log"
HASH_BYTES = 32
RECORD_HEAD = struct.Struct(">IQ")  # len, seq (common/logfile.c)
CATCH_UP_TIMEOUT_S = 20.0


def replicator_path():
    return build_dir() / "replicator" / "esbank-replicator"


needs_replicator = pytest.mark.skipif(
    not replicator_path().exists(),
    reason="no esbank-replicator in the build (%s): the replicator and the bus's "
           "replication (issue 13) have not landed, or libnats was not found"
    % replicator_path())


# -- records and chains ----------------------------------------------------


def chain_hash(prev, seq, body):
    """The record hash of common/logfile.c: BLAKE2b-256(prev || seq || len || body)."""
    h = hashlib.blake2b(digest_size=HASH_BYTES)
    h.update(prev + struct.pack(">QI", seq, len(body)) + body)
    return h.digest()


def split_records(data):
    """[(seq, body, hash)] of records back to back (a stream message's data)."""
    out, off = [], 0
    while off < len(data):
        n, seq = RECORD_HEAD.unpack_from(data, off)
        body = data[off + RECORD_HEAD.size:off + RECORD_HEAD.size + n]
        h = data[off + RECORD_HEAD.size + n:off + RECORD_HEAD.size + n + HASH_BYTES]
        assert len(body) == n and len(h) == HASH_BYTES, "partial record at %d" % off
        out.append((seq, body, h))
        off += RECORD_HEAD.size + n + HASH_BYTES
    return out


def check_chain(records, what):
    """Asserts seqs 1.. contiguous and every hash chained; returns the head hex."""
    prev = bytes(HASH_BYTES)
    for i, (seq, body, h) in enumerate(records):
        assert seq == i + 1, "%s: seq %d at position %d" % (what, seq, i + 1)
        assert chain_hash(prev, seq, body) == h, "%s: the hash chain breaks at seq %d" % (
            what, seq)
        prev = h
    return prev.hex()


def log_file_records(data_dir):
    """[(seq, body, hash)] of DATA/events.log."""
    path = data_dir / "events.log"
    raw = path.read_bytes()
    out = []
    for off, size, seq in crashkit.log_records(path):
        n = RECORD_HEAD.unpack_from(raw, off)[0]
        body = raw[off + RECORD_HEAD.size:off + RECORD_HEAD.size + n]
        out.append((seq, body, raw[off + size - HASH_BYTES:off + size]))
    return out


def stream_records(cl):
    """[(seq, body, hash)] of every record in the stream's NAME.log messages,
    checking each message's Nats-Msg-Id ("<first seq>-<last seq>")."""
    info = cl.stream_info(STREAM)
    assert info, "stream %s not found" % STREAM
    out = []
    for q in range(1, info["state"]["last_seq"] + 1):
        m = cl.stream_msg(STREAM, q)
        if m["subject"] != LOG_SUBJECT:
            continue
        recs = split_records(m["data"])
        assert recs, "stream message %d holds no record" % q
        assert m["headers"].get("Nats-Msg-Id") == "%d-%d" % (recs[0][0], recs[-1][0]), \
            (q, m["headers"])
        out.extend(recs)
    return out


def event_of(body):
    return msgpack.unpackb(body, raw=False)


# -- groups ------------------------------------------------------------------


# A command waits for a quorum of the stream, which may be electing a leader.
REPLICATED_CLIENT_TIMEOUT_S = 30.0


def replicated_group(base, args):
    g = Group(base, extra_args=args)
    g.client_timeout = REPLICATED_CLIENT_TIMEOUT_S
    return g


def primary_group(base, cl, node):
    return replicated_group(base, ["--replicate", cl.urls, "--stream", STREAM, "--node", node])


def standby_group(base, cl, node):
    return replicated_group(base, ["--follow", cl.urls, "--stream", STREAM, "--node", node])


def status_of(g):
    st = crashkit.status(g, timeout=2.0)
    assert st is not None, "no status from %s:\n%s" % (g.base, g.log_tail())
    return st


def wait_role(g, role, timeout=CATCH_UP_TIMEOUT_S):
    return wait_for(lambda: (crashkit.status(g) or {}).get("role") == role and status_of(g),
                    timeout, "%s becomes %s" % (g.base.name, role))


def wait_replicator(g, timeout=CATCH_UP_TIMEOUT_S):
    wait_for(lambda: ((crashkit.status(g) or {}).get("peers", {}).get("replicator") or {})
             .get("connected") is True, timeout, "%s's replicator connected" % g.base.name)


def wait_caught_up(follower, leader, timeout=CATCH_UP_TIMEOUT_S):
    """Waits until follower's durable seq and head hash are leader's."""
    def same():
        a, b = crashkit.status(follower), crashkit.status(leader)
        return (a and b and a["durable_seq"] == b["durable_seq"]
                and a["head_hash"] == b["head_hash"] and a)
    return wait_for(same, timeout, "%s caught up with %s" % (follower.base.name,
                                                             leader.base.name))


def stream_last_event_seq(cl):
    """The last event seq in the stream (from its last log message's id)."""
    info = cl.stream_info(STREAM)
    last = info["state"]["last_seq"] if info else 0
    for q in range(last, 0, -1):
        m = cl.stream_msg(STREAM, q)
        if m["subject"] == LOG_SUBJECT:
            return int(m["headers"]["Nats-Msg-Id"].split("-")[1])
    return 0


@pytest.fixture
def groups():
    """Every Group a test makes, stopped afterwards."""
    made = []
    yield made
    for g in made:
        g.cleanup()


def start(groups, g):
    groups.append(g)
    g.start()
    wait_replicator(g)
    return g


class Target:
    """Where the load's workers connect: switched to the new primary on failover."""

    def __init__(self, g):
        self.g = g

    @property
    def sock_path(self):
        return self.g.sock_path


def append_takeover(data_dir, node):
    """Appends a primary_changed record to a stopped group's events.log, as a
    standby's logger would write one it followed (version 2: in a batch of
    its own). Returns its seq."""
    path = data_dir / "events.log"
    raw = path.read_bytes()
    recs = log_file_records(data_dir)
    last = event_of(recs[-1][1])
    seq = last["seq"] + 1
    body = msgpack.packb({"seq": seq, "ts": last["ts"] + 1, "type": "primary_changed",
                          "node": node})
    rec = RECORD_HEAD.pack(len(body), seq) + body + chain_hash(recs[-1][2], seq, body)
    if raw[6:8] == b"\x00\x02":
        fields = struct.pack(">QQQ", seq, seq, len(rec))
        check = hashlib.blake2b(struct.pack(">Q", len(raw)) + fields, digest_size=16).digest()
        rec = fields + check + rec
    with open(path, "ab") as f:
        f.write(rec)
        os.fsync(f.fileno())
    return seq


def evs_head(data_dir, seq):
    """The chain hash at seq of DATA/events.log."""
    return next(h for q, _, h in log_file_records(data_dir) if q == seq).hex()


def esbank_tool(*args):
    exe = build_dir() / "client" / "esbank"
    p = subprocess.run([str(exe), "--json"] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, "esbank %s exited %d:\n%s%s" % (args, p.returncode, p.stdout,
                                                              p.stderr)
    return json.loads(p.stdout)


def test_takeover_record_replays_everywhere(groups, tmp_path):
    """A primary_changed event in the log (no replicator needed): recovery
    replays it to the resolver and the snapshotter, it changes no balance,
    `events` returns it, commands go on after it, a snapshot taken after it
    loads, and audit, replay and whatif read past it."""
    g = Group(tmp_path / "g", extra_args=["--snapshot-every", "1"])
    groups.append(g)
    g.start()
    c = g.client()
    x, y = crashkit.open_verified_many(g, c, 2)
    expect_ok(c.transfer(x, y, 300, key="before"))
    g.stop()
    seq = append_takeover(g.data, "node-z")

    g.start()
    c = g.client()
    evs, rp, st = crashkit.check_state_is_replay(c)
    assert st["last_seq"] == seq
    assert {k: evs[-1][k] for k in ("seq", "type", "node")} == {
        "seq": seq, "type": "primary_changed", "node": "node-z"}
    assert rp.balance[x] == OPENING_BALANCE - 300 and rp.balance[y] == OPENING_BALANCE + 300
    assert expect_ok(c.transfer(y, x, 50, key="after"))["seq"] == seq + 1
    wait_for(lambda: any(int(p.name[:20]) > seq for p in (g.data / "snapshots").glob("*.snap")),
             CATCH_UP_TIMEOUT_S, "a snapshot after the takeover")
    g.stop()
    g.start()  # from the snapshot taken after the takeover
    c = g.client()
    crashkit.check_state_is_replay(c)
    head = status_of(g)["head_hash"]
    g.stop()

    audit = esbank_tool("audit", "--data", g.data)
    assert audit["ok"] is True and audit["last_seq"] == seq + 1, audit
    assert audit["head_hash"] == head
    assert check_chain(log_file_records(g.data), "events.log") == head
    replay = esbank_tool("replay", "--data", g.data, "--until", seq)
    assert (replay["seq"], replay["head_hash"]) == (seq, evs_head(g.data, seq)), replay
    got = {a["account"]: a["balance"] for a in replay["accounts"]}
    assert got == {x: OPENING_BALANCE - 300, y: OPENING_BALANCE + 300}, replay
    inject = tmp_path / "inject.jsonl"
    inject.write_text(json.dumps({"op": "withdraw", "account": x, "amount": 1}) + "\n")
    whatif = esbank_tool("whatif", "--data", g.data, "--at", seq - 1, "--inject", inject,
                         "--then-rest")
    assert whatif["injected"][0]["ok"] is True, whatif
    assert not whatif["rest"]["rejected"], whatif  # the takeover and the transfer after it


# -- the cluster fixture itself ------------------------------------------------


def test_nats_cluster_survives_its_stream_leader(nats_cluster):
    """The fixture's cluster: a stream with three replicas gets a new leader
    when its leader is killed with SIGKILL, and the restarted node is current
    again (what the failover test relies on)."""
    cl = nats_cluster
    c = cl.conn()
    try:
        r = cl.create_stream({"name": "FIX", "subjects": ["FIX.log"],
                              "storage": "file", "num_replicas": 3})
        assert "error" not in r, r
        for i in range(3):
            assert b'"seq":%d' % (i + 1) in c.request("FIX.log", b"x%d" % i).replace(b" ", b"")
    finally:
        c.close()
    old = cl.stream_leader("FIX")
    cl.kill9(old)
    new = wait_for(lambda: cl.leader_now("FIX") not in (None, old) and cl.leader_now("FIX"),
                   30, "a new stream leader")
    assert new != old
    cl.restart(old)
    wait_for(lambda: all(p.get("current") for p in
                         (cl.stream_info("FIX") or {}).get("cluster", {}).get("replicas", [{}])),
             CATCH_UP_TIMEOUT_S, "every replica current again")
    assert cl.stream_info("FIX")["state"]["messages"] == 3
    assert cl.stream_msg("FIX", 2)["data"] == b"x1"


# -- replication -----------------------------------------------------------------


FENCE_RACES = 5
FENCE_ATTEMPTS_MAX = 20


def test_empty_stream_fence_lets_one_writer_in(nats_cluster):
    """The fence on an empty stream (Nats-Expected-Last-Sequence: 0, what a
    first primary and a takeover on an empty stream send) on this
    nats-server (Debian's 2.9.10): two writers race, each publishing before
    reading its ack, over and over on new replicated streams; exactly one
    wins each race and the other gets wrong last sequence (10071)."""
    cl = nats_cluster
    conns = [NatsConn(n.url) for n in cl.nodes[:2]]
    races = 0
    try:
        for attempt in range(FENCE_ATTEMPTS_MAX):
            if races == FENCE_RACES:
                break
            name = "FENCE%d" % attempt
            r = cl.create_stream({
                "name": name, "subjects": [name + ".log"], "storage": "file",
                "num_replicas": 3})
            assert "error" not in r, r
            cl.stream_leader(name)
            for i, c in enumerate(conns):
                c.publish(name + ".log", b"writer %d" % i,
                          {"Nats-Expected-Last-Sequence": "0", "Nats-Msg-Id": "w%d" % i})
            replies = [c.next_reply() for c in conns]
            if None in replies:
                # "No responders": the new stream's subject was not known on
                # that writer's node yet. No race happened.
                continue
            races += 1
            acks = [json.loads(x) for x in replies]
            won = [a for a in acks if "error" not in a]
            lost = [a for a in acks if "error" in a]
            assert len(won) == 1 and won[0]["seq"] == 1, acks
            assert len(lost) == 1 and lost[0]["error"]["err_code"] == 10071, acks
            assert cl.stream_info(name, timeout=5)["state"]["messages"] == 1
        assert races == FENCE_RACES, "only %d races of %d streams" % (races, FENCE_ATTEMPTS_MAX)
    finally:
        for c in conns:
            c.close()


@needs_replicator
def test_standby_follows_the_stream(nats_cluster, groups, tmp_path):
    """The stream holds the primary's log records byte for byte (one chain,
    message ids first-last); a standby follows with the same head hash,
    serves queries and answers commands not_primary naming the primary."""
    cl = nats_cluster
    a = start(groups, primary_group(tmp_path / "a", cl, "node-a"))
    b = start(groups, standby_group(tmp_path / "b", cl, "node-b"))
    ca = a.client()
    x, y = crashkit.open_verified_many(a, ca, 2)
    for i in range(20):
        expect_ok(ca.transfer(x, y, 10 + i, key="t%d" % i))
    st = status_of(a)
    assert st["role"] == "primary", st
    assert st["replicated_seq"] == st["durable_seq"], st
    assert st["stream"]["name"] == STREAM and st["stream"]["replicas"] == 3, st
    head = check_chain(log_file_records(a.data), "the primary's events.log")
    assert head == st["head_hash"]
    assert stream_records(cl) == log_file_records(a.data), "stream and log differ"

    sb = wait_caught_up(b, a)
    assert sb["role"] == "standby", sb
    assert check_chain(log_file_records(b.data), "the standby's events.log") == head
    cb = b.client()
    assert expect_ok(cb.get_account(y))["balance"] == OPENING_BALANCE + sum(range(10, 30))
    r = expect_err(cb.transfer(y, x, 5), "not_primary")
    assert r.get("primary") in ("node-a", None), r
    crashkit.check_state_is_replay(cb)


def standby_lag(g):
    """The standby's replication.lag and lag_ms, when both are 0."""
    rep = status_of(g)["replication"]
    return rep["lag"] == 0 and rep["lag_ms"] == 0 and rep


@needs_replicator
def test_standby_status_shows_its_lag(nats_cluster, groups, tmp_path):
    """A standby's status says how far behind the primary it is:
    replication.lag (events) and lag_ms are 0 once it is caught up. With its
    replicator stopped (SIGSTOP) while the primary takes commands, it hears
    no heartbeat: lag_ms grows past REPL_LAG_FRESH_MS (1 s). With its logger
    stopped instead, the heartbeats say the primary is ahead: lag counts the
    events it has not applied. Continued, it is back to 0 and 0."""
    cl = nats_cluster
    a = start(groups, primary_group(tmp_path / "a", cl, "node-a"))
    b = start(groups, standby_group(tmp_path / "b", cl, "node-b"))
    ca = a.client()
    x, y = crashkit.open_verified_many(a, ca, 2)
    expect_ok(ca.transfer(x, y, 1, key="lag-0"))
    wait_caught_up(b, a)
    wait_for(lambda: standby_lag(b), CATCH_UP_TIMEOUT_S, "the standby's lag 0")
    assert status_of(a)["replication"]["lag_ms"] is None

    for child in ("replicator", "logger"):
        pid = crashkit.child_pid(b, child)
        assert pid, "no RUN/%s.pid" % child
        os.kill(pid, signal.SIGSTOP)
        try:
            for i in range(10):
                expect_ok(ca.transfer(x, y, 1, key="%s-%d" % (child, i)))
            last = status_of(a)["durable_seq"]
            time.sleep(1.5)  # longer than REPL_LAG_FRESH_MS
            sb = status_of(b)
            rep = sb["replication"]
            assert sb["durable_seq"] < last, sb
            assert rep["lag_ms"] > 1000, (child, sb)
            if child == "logger":
                assert rep["lag"] == last - sb["durable_seq"], (last, sb)
            time.sleep(0.3)
            assert status_of(b)["replication"]["lag_ms"] >= rep["lag_ms"] + 200, child
        finally:
            os.kill(pid, signal.SIGCONT)
        wait_caught_up(b, a)
        wait_for(lambda: standby_lag(b), CATCH_UP_TIMEOUT_S,
                 "the standby's lag 0 after its %s continued" % child)


@needs_replicator
def test_failover_under_load(nats_cluster, groups, tmp_path):
    """Under keyed, pipelined load: kill -9 the stream's leader node, restart
    it; kill -9 the whole primary group and delete its data directory;
    promote the standby. Every acknowledged command is in the new primary's
    log exactly once with the seq it was acknowledged with, seqs contiguous,
    the hash chain intact (the same records as the stream), money conserved,
    the state equal to a replay."""
    cl = nats_cluster
    rng, _ = crashkit.seeded_rng("ESBANK_REPL_SEED")
    a = start(groups, primary_group(tmp_path / "a", cl, "node-a"))
    b = start(groups, standby_group(tmp_path / "b", cl, "node-b"))
    accounts = crashkit.open_verified_many(a, a.client(), 8)
    target = Target(a)
    workers = [crashkit.Worker(target, accounts, rng, inflight=32, rate=1000, name="w%d" % i,
                               timeout=120)
               for i in range(4 if LONG else 2)]
    for w in workers:
        w.start()
    phase = 5.0 if LONG else 1.0

    time.sleep(phase)
    leader = cl.stream_leader(STREAM)
    cl.kill9(leader)
    wait_for(lambda: cl.leader_now(STREAM) not in (None, leader), 30, "a new stream leader")
    acked = sum(len(w.acked) for w in workers)
    cl.restart(leader)
    wait_for(lambda: sum(len(w.acked) for w in workers) > acked + 50, 30,
             "acknowledgements after the leader's death")
    time.sleep(phase)

    a.kill9()
    shutil.rmtree(a.data)
    last = stream_last_event_seq(cl)
    wait_for(lambda: status_of(b)["durable_seq"] == last, CATCH_UP_TIMEOUT_S,
             "the standby has every event of the stream")
    cb = b.client()
    crashkit.check_state_is_replay(cb)  # the standby's state is a replay of its log

    t0 = time.monotonic()
    r = expect_ok(cb.call("promote", timeout=45))
    assert r["seq"] == last + 1, (r, last)
    target.g = b
    wait_for(lambda: sum(len(w.acked) for w in workers) > acked + 100, 30,
             "acknowledgements by the new primary")
    print("promote to the next acknowledgement: %.3f s" % (time.monotonic() - t0))
    time.sleep(phase)
    for w in workers:
        w.stop()
    for w in workers:
        w.join(150)

    evs, rp, st = crashkit.check_state_is_replay(cb)
    assert st["role"] == "primary", st
    crashkit.check_commands(evs, rp, workers)
    takeover = evs[r["seq"] - 1]
    assert (takeover["type"], takeover["node"]) == ("primary_changed", "node-b"), takeover
    assert [e["seq"] for e in evs if e["type"] == "primary_changed"] == [r["seq"]]
    assert len(evs) > r["seq"], "no command acknowledged after the takeover"
    recs = log_file_records(b.data)
    assert check_chain(recs, "the new primary's events.log") == st["head_hash"]
    assert [event_of(body) for _, body, _ in recs] == evs
    wait_for(lambda: status_of(b)["replicated_seq"] == st["durable_seq"], CATCH_UP_TIMEOUT_S,
             "everything replicated")
    assert stream_records(cl) == recs, "the stream and the new primary's log differ"


def fence_old_primary(cl, groups, tmp_path):
    """A primary a and a standby b; a's bus is stopped (SIGSTOP) with commands
    in flight, b is promoted, a's bus continues (SIGCONT). Returns (a, b, the
    promote reply, a's replies to the commands sent while stopped, accounts)."""
    a = start(groups, primary_group(tmp_path / "a", cl, "node-a"))
    b = start(groups, standby_group(tmp_path / "b", cl, "node-b"))
    ca = a.client()
    x, y = crashkit.open_verified_many(a, ca, 2)
    for i in range(5):
        expect_ok(ca.transfer(x, y, 1 + i, key="before-%d" % i))
    wait_caught_up(b, a)
    bus = crashkit.child_pid(a, "bus")
    assert bus, "no RUN/bus.pid"
    os.kill(bus, signal.SIGSTOP)
    try:
        rids = [ca.send("transfer", {"from": x, "to": y, "amount": 7, "key": "held-%d" % i})
                for i in range(20)]
        promoted = expect_ok(b.client().call("promote", timeout=45))  # reads the tail and the receipts, on a loaded machine
    finally:
        os.kill(bus, signal.SIGCONT)
    held = [ca.reply(rid, timeout=20) for rid in rids]
    return a, b, promoted, held, (x, y)


@needs_replicator
def test_stopped_primary_is_fenced(nats_cluster, groups, tmp_path):
    """SIGSTOP the primary's bus, promote the standby, SIGCONT: the old
    primary is fenced and acknowledges nothing more; no seq is acknowledged
    by two primaries."""
    a, b, promoted, held, (x, y) = fence_old_primary(nats_cluster, groups, tmp_path)
    assert not [r for r in held if r.get("ok")], "the fenced primary acknowledged %r" % held
    assert {r.get("error") for r in held} == {"not_primary"}, held
    sa = wait_role(a, "fenced")
    ca = a.client()
    for i in range(5):
        r = expect_err(ca.transfer(x, y, 3, key="after-%d" % i), "not_primary")
        assert r.get("primary") in ("node-b", None), r
    assert status_of(a)["replicated_seq"] < promoted["seq"], sa

    cb = b.client()
    expect_ok(cb.transfer(y, x, 11, key="new-primary-0"))
    evs, _, st = crashkit.check_state_is_replay(cb)
    assert st["role"] == "primary"
    assert evs[promoted["seq"] - 1]["type"] == "primary_changed"
    assert not [e for e in evs if e.get("key", "").startswith(("held-", "after-"))], \
        "a command the old primary took is in the new primary's log"


@needs_replicator
def test_fenced_group_recovers_after_resolver_restart(nats_cluster, groups, tmp_path):
    """A fenced group whose resolver is killed recovers to live, still
    fenced: its state is rebuilt from what the stream holds (the events it
    logged but never acknowledged are left out), queries are answered,
    commands get not_primary."""
    a, b, promoted, held, (x, y) = fence_old_primary(nats_cluster, groups, tmp_path)
    sa = wait_role(a, "fenced")
    old = crashkit.kill_child(a, "resolver")
    crashkit.wait_restarted(a, "resolver", old)
    st = wait_for(lambda: (lambda s: s if s and s["state"] == "live" else None)(
        crashkit.status(a)), 30, "the fenced group live again")
    assert st["role"] == "fenced" and st["last_seq"] == st["durable_seq"], st
    assert st["durable_seq"] == sa["replicated_seq"] < promoted["seq"], (st, sa)
    ca = a.client()
    got = expect_ok(ca.get_account(y))
    assert got["balance"] == OPENING_BALANCE + sum(1 + i for i in range(5)), got
    expect_err(ca.transfer(x, y, 3, key="after"), "not_primary")


@needs_replicator
def test_rejoined_primary_follows_with_the_same_head(nats_cluster, groups, tmp_path):
    """An old, fenced primary restarted with --follow on its data directory
    cuts the events the stream does not have (keeping a copy beside the log)
    and follows with the same head hash as the new primary."""
    cl = nats_cluster
    a, b, promoted, _, (x, y) = fence_old_primary(cl, groups, tmp_path)
    wait_role(a, "fenced")
    local_last = status_of(a)["durable_seq"]
    a.stop()
    cb = b.client()
    for i in range(10):
        expect_ok(cb.transfer(y, x, 2, key="later-%d" % i))

    a.extra_args = ["--follow", cl.urls, "--stream", STREAM, "--node", "node-a"]
    a.start()
    wait_replicator(a)
    sa = wait_caught_up(a, b)
    assert sa["role"] == "standby", sa
    cuts = sorted(a.data.glob("events.log.cut-*"))
    if local_last >= promoted["seq"]:  # a logged events the stream never took
        assert cuts, "no copy of the cut events beside the log: %r" % list(a.data.iterdir())
        assert cuts[0].stat().st_size > 0
    recs = log_file_records(a.data)
    assert check_chain(recs, "the rejoined events.log") == status_of(b)["head_hash"]
    assert recs == log_file_records(b.data)
    ca = a.client()
    crashkit.check_state_is_replay(ca)
    r = expect_err(ca.transfer(x, y, 1), "not_primary")
    assert r.get("primary") in ("node-b", None), r
