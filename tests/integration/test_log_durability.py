"""The event log across crashes of the logger (issue 11, items 1 and 4).

test_no_reply_before_an_fsync_completed: the logger is killed between its
pwrite and its fdatasync (the fault shim holds the fdatasync); the restarted
logger finds the event in the page cache. No reply is released until an
fsync of the log has completed: the new logger's own fdatasync at start-up.

test_unsynced_events_are_never_announced: the same kill, and then the new
logger's fdatasync fails (EIO): it must not report the unsynced event as
durable, so the command is never acknowledged; it stops (exit 100) with a
message. Once the disk works again the group comes back and its state is a
replay of the log.

test_torn_multi_record_last_batch_is_cut: a batch of many records whose
later records reached the disk whole and an earlier one did not (unordered
write-back) is cut at start-up: the group starts, without those events.

test_damage_is_refused_and_log_repair_keeps_the_bytes: damage to an earlier,
acknowledged batch stops the logger naming `esbank log-repair`; the command
cuts the log there and keeps every byte it cut in a file beside the log.
"""

import signal
import os
import subprocess
import time

import pytest

from conftest import Group, build_dir, expect_ok, open_verified
from crashkit import check_state_is_replay, child_pid, log_records, wait_settled
from esbank_proto import ConnectionClosed
from faultshim import Faults

PILED = 20  # transfers that pile up behind a held fdatasync: one batch


@pytest.fixture
def shim_group(tmp_path):
    faults = Faults(tmp_path)
    g = Group(tmp_path / "g", env=faults.env())
    try:
        g.start()
        yield g, faults
    finally:
        faults.clear()
        g.cleanup()


def no_ok_reply(c, rid, wait_s):
    """True when no ok reply to rid arrives within wait_s."""
    try:
        r = c.reply(rid, timeout=wait_s)
    except (TimeoutError, ConnectionClosed, OSError):
        return True
    return r.get("ok") is not True


def hold_a_write(g, faults, c, a, b):
    """Sends a transfer whose batch the logger pwrites and then blocks in
    fdatasync; returns (its request id, the logger's pid)."""
    faults.set("fsync pause events.log")
    rid = c.send("transfer", {"from": a, "to": b, "amount": 1234})
    pid, path = faults.wait_paused()
    assert pid == child_pid(g, "logger") and path.endswith("events.log"), (pid, path)
    return rid, pid


def wait_new_pause(faults, old_pid, c, rid, timeout=10.0):
    """Waits until a process other than old_pid is held in an fsync of the
    log; fails if the reply to rid arrives first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        held = [p for p, _ in faults.paused() if p != old_pid]
        if held:
            return held[0]
        assert no_ok_reply(c, rid, 0.05), \
            "the reply was released while no fsync of the log had completed"
    raise AssertionError("the restarted logger never synced the log before serving")


def test_no_reply_before_an_fsync_completed(shim_group):
    g, faults = shim_group
    c = g.client()
    a, b = open_verified(c), open_verified(c)
    rid, pid = hold_a_write(g, faults, c, a, b)
    os.kill(pid, signal.SIGKILL)  # after its pwrite, before its fdatasync
    # The restarted logger finds the event in the page cache; it must sync
    # it (and is held there by the shim) before it reports anything.
    new_pid = wait_new_pause(faults, pid, c, rid)
    assert new_pid == child_pid(g, "logger")
    assert no_ok_reply(c, rid, 0.5), "reply released while the fsync is held"
    faults.clear()
    r = expect_ok(c.reply(rid, timeout=10))
    evs, _, _ = check_state_is_replay(c)
    assert evs[r["seq"] - 1]["type"] == "money_transferred"


def test_unsynced_events_are_never_announced(shim_group):
    g, faults = shim_group
    c = g.client()
    a, b = open_verified(c), open_verified(c)
    before = expect_ok(c.status())["durable_seq"]
    rid, pid = hold_a_write(g, faults, c, a, b)
    # Every later fsync of the log fails; the held one stays held.
    faults.set("fsync eio events.log", "fsync pause events.log")
    os.kill(pid, signal.SIGKILL)
    assert no_ok_reply(c, rid, 3.0), "an event no fsync made durable was acknowledged"
    assert "cannot make %s/events.log durable" % g.data in g.log_text(), g.log_tail()
    faults.clear()
    try:
        st = wait_settled(g)  # esbankd restarted the logger ...
    except AssertionError:
        if g.proc.poll() is None:
            raise
        g.proc = None  # ... or stopped the group on its exit 100: start it again
        g.start()
        st = wait_settled(g)
    assert st["durable_seq"] >= before
    c = g.client()
    check_state_is_replay(c)


def piled_batch(g, faults, c, a, b):
    """Makes the logger write PILED transfers as one batch; returns their seqs."""
    faults.set("fsync pause events.log")
    first = c.send("transfer", {"from": a, "to": b, "amount": 1})
    faults.wait_paused()
    rids = [c.send("transfer", {"from": a, "to": b, "amount": 100 + i}) for i in range(PILED)]
    time.sleep(0.5)  # they reach the logger's pending batch
    faults.clear()
    expect_ok(c.reply(first))
    return [expect_ok(c.reply(r))["seq"] for r in rids]


def test_torn_multi_record_last_batch_is_cut(shim_group):
    g, faults = shim_group
    c = g.client()
    a, b = open_verified(c), open_verified(c)
    seqs = piled_batch(g, faults, c, a, b)
    assert seqs == list(range(seqs[0], seqs[0] + PILED))
    assert g.stop() == 0
    log = g.data / "events.log"
    data = bytearray(log.read_bytes())
    recs = {seq: (off, size) for off, size, seq in log_records(log)}
    assert max(recs) == seqs[-1]
    off, size = recs[seqs[2]]
    # The page holding this record's body never reached the disk; the one
    # holding its hash and the records after it did.
    data[off + 12:off + size - 32] = bytes(size - 44)
    log.write_bytes(bytes(data))
    g.start()
    c = g.client()
    evs, _, st = check_state_is_replay(c)
    assert st["last_seq"] < seqs[2], st
    assert "cut a torn last batch" in g.log_text().rsplit("===== start", 1)[1]
    expect_ok(c.transfer(a, b, 5))


def test_damage_is_refused_and_log_repair_keeps_the_bytes(shim_group):
    g, faults = shim_group
    c = g.client()
    a, b = open_verified(c), open_verified(c)
    seqs = piled_batch(g, faults, c, a, b)
    expect_ok(c.transfer(a, b, 7))  # a later batch: the piled one was acknowledged
    assert g.stop() == 0
    log = g.data / "events.log"
    data = bytearray(log.read_bytes())
    off, size = {seq: (o, n) for o, n, seq in log_records(log)}[seqs[5]]
    data[off + 20] ^= 0x10
    log.write_bytes(bytes(data))
    with pytest.raises(BaseException):
        g.start(timeout=8)
    g.proc = None
    said = g.log_text().rsplit("===== start", 1)[1]
    assert "damaged at seq %d (byte offset %d)" % (seqs[5], off) in said, said
    assert "esbank log-repair --data %s" % g.data in said, said
    esbank = str(build_dir() / "client" / "esbank")
    r = subprocess.run([esbank, "log-repair", "--data", str(g.data)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    copies = list(g.data.glob("events.log.cut-%d-*" % seqs[5]))
    assert len(copies) == 1, (r.stdout, copies)
    assert copies[0].read_bytes() == bytes(data[off:]), "the copy holds every byte cut"
    assert str(copies[0]) in r.stdout, r.stdout
    g.start()
    c = g.client()
    evs, _, st = check_state_is_replay(c)
    assert st["last_seq"] == seqs[5] - 1, st


@pytest.mark.parametrize("rule", ["fsync eio events.log 1", "write torn events.log 1",
                                  "write short events.log 1"])
def test_a_failed_write_or_fsync_is_rewritten_not_retried(shim_group, rule):
    """A running logger whose pwrite tears or stops short, or whose
    fdatasync fails (EIO), acknowledges nothing of that batch; it cuts the
    file back and writes the whole batch again before its next fdatasync
    (never a bare second fsync: the failed pages may be clean and lost).
    The command is then answered once, and the log holds it exactly once,
    after a whole, valid chain."""
    g, faults = shim_group
    c = g.client()
    a, b = open_verified(c), open_verified(c)
    faults.set(rule)
    rid = c.send("transfer", {"from": a, "to": b, "amount": 4321})
    r = expect_ok(c.reply(rid, timeout=15))
    assert "faultshim: pid %d: %s" % (child_pid(g, "logger"), " ".join(rule.split()[:2])) \
        in g.log_text(), g.log_tail()
    faults.clear()
    assert g.stop() == 0
    seqs = [seq for _, _, seq in log_records(g.data / "events.log")]
    assert seqs == list(range(1, len(seqs) + 1)) and r["seq"] in seqs, seqs
    g.start()  # the log reopens without a cut: nothing torn was left behind
    assert "torn" not in g.log_text().rsplit("===== start", 1)[1]
    c = g.client()
    evs, _, _ = check_state_is_replay(c)
    assert [e["amount"] for e in evs if e["type"] == "money_transferred"].count(4321) == 1
