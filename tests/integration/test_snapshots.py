"""Snapshots and recovery (DESIGN.md "Recovery"; common/snapfile.c):

- a damaged snapshot (one flipped byte, wherever it is) is skipped with a
  warning and the rebuilt state is still exactly the replay of the log;
- a snapshot copied from another data directory is refused (its chain hash
  is not this log's) and the state is rebuilt from the log;
- recovery with and without snapshots gives the same state: every account,
  head hash, reports, and idempotency keys.
"""

import shutil
import time

import pytest

from conftest import _drop_group, _make_group, expect_ok
from crashkit import check_state_is_replay, open_verified_many, snapshot_of_state

EVERY = 40


def snaps(g):
    d = g.data / "snapshots"
    return sorted(d.glob("*.snap")) if d.is_dir() else []


def load(g, c, accounts, n, tag):
    """n keyed transfers and withdrawals, pipelined; returns {key: (op, fields, reply)}."""
    sent = {}
    for i in range(n):
        k = "%s-%d" % (tag, i)
        a, b = accounts[i % len(accounts)], accounts[(i + 1) % len(accounts)]
        if i % 5 == 4:
            op, fields = "withdraw", {"account": a, "amount": 1 + i % 7, "key": k}
        else:
            op, fields = "transfer", {"from": a, "to": b, "amount": 1 + i % 97, "key": k}
        sent[k] = (op, fields, c.send(op, fields))
    return {k: (op, f, expect_ok(c.reply(rid, timeout=30))) for k, (op, f, rid) in sent.items()}


def wait_snapshot_at(g, c, seq, timeout=10.0):
    """Waits until the snapshotter has written a snapshot at or after seq."""
    deadline = time.monotonic() + timeout
    while True:
        st = expect_ok(c.status())
        if st["snapshot_seq"] >= seq and snaps(g):
            return st["snapshot_seq"]
        assert time.monotonic() < deadline, "no snapshot at or after %d: %r" % (seq, st)
        time.sleep(0.05)


def populated(g, n=300, tag="k"):
    """Accounts and n keyed commands, sent in chunks so that the snapshotter
    writes several snapshots; then one more command past the newest one.
    Returns (accounts, keyed commands)."""
    c = g.client(timeout=30)
    accounts = open_verified_many(g, c, 6)
    keyed = {}
    chunk = 2 * EVERY
    for i in range(0, n, chunk):
        before = expect_ok(c.status())["snapshot_seq"]
        keyed.update(load(g, c, accounts, min(chunk, n - i), "%s%d" % (tag, i)))
        if min(chunk, n - i) > EVERY:
            wait_snapshot_at(g, c, before + 1)
    expect_ok(c.transfer(accounts[0], accounts[1], 3))  # past the newest snapshot
    return accounts, keyed


def since_last_start(g):
    return g.log_text().rsplit("===== start", 1)[1]


def check_keys(c, keyed):
    """Every keyed command, sent again, gets its original reply."""
    rids = {k: c.send(op, f) for k, (op, f, _) in keyed.items()}
    for k, rid in rids.items():
        r = expect_ok(c.reply(rid, timeout=30))
        orig = keyed[k][2]
        assert (r["seq"], r["balance"]) == (orig["seq"], orig["balance"]), (k, r, orig)


def reports(c):
    return (expect_ok(c.call("sum_transactions"))["sum"],
            expect_ok(c.call("inactive_users"))["total"])


@pytest.mark.parametrize("where", ["magic", "seq", "chain", "checksum", "body", "last", "all"])
def test_damaged_snapshot_is_skipped(fresh_group, where):
    g = fresh_group("--snapshot-every", str(EVERY))
    accounts, keyed = populated(g)
    c = g.client(timeout=30)
    before = snapshot_of_state(c, accounts)
    assert g.stop() == 0
    files = snaps(g)
    assert len(files) >= 2, files
    victims = files if where == "all" else files[-1:]
    for f in victims:
        data = bytearray(f.read_bytes())
        at = {"magic": 0, "seq": 15, "chain": 20, "checksum": 60, "body": 88 + (len(data) - 88) // 2,
              "last": len(data) - 1, "all": len(data) // 2}[where]
        data[at] ^= 0x01
        f.write_bytes(bytes(data))
    # No new snapshot at this start, so the resolver has to pick among these.
    g.extra_args = ["--snapshot-every", "100000"]
    g.start()
    c = g.client(timeout=30)
    assert snapshot_of_state(c, accounts) == before
    check_state_is_replay(c)
    check_keys(c, keyed)
    log = since_last_start(g)
    for f in victims:
        seq = int(f.stem)
        assert "snapshot %d skipped" % seq in log or "%s: damaged" % f.name in log \
            or ("%s" % f.name in log and "skipped" in log), \
            "the damaged snapshot %s is not reported as skipped:\n%s" % (f.name, log)
    if where == "all":
        assert "loaded the snapshot" not in log and "replaying events 1.." in log, log
    else:
        assert "the resolver loaded the snapshot at %d" % int(files[-2].stem) in log, log
    # Damaged files are left for examination; the group goes on.
    assert all(f.exists() for f in victims)
    r = expect_ok(c.transfer(accounts[1], accounts[2], 5))
    assert r["seq"] == before["last_seq"] + 1
    after = snapshot_of_state(c, accounts)
    assert g.stop() == 0
    g.start()
    c = g.client(timeout=30)
    assert snapshot_of_state(c, accounts) == after
    check_state_is_replay(c)


@pytest.mark.parametrize("theirs", ["behind", "ahead"])
def test_snapshot_of_another_data_dir_is_refused(fresh_group, theirs):
    """Copies the other group's snapshots into this one's data directory.
    behind: their seqs are below this log's last seq, so the resolver loads
    one and the chain check must refuse it; ahead: theirs are past this log."""
    mine_n, their_n = (400, 150) if theirs == "behind" else (150, 400)
    g = fresh_group("--snapshot-every", "100000")  # this group takes none itself
    other = fresh_group("--snapshot-every", str(EVERY))
    c = g.client(timeout=30)
    accounts = open_verified_many(g, c, 6)
    keyed = load(g, c, accounts, mine_n, "mine")
    populated(other, their_n, "theirs")
    before = snapshot_of_state(c, accounts)
    assert g.stop() == 0
    assert other.stop() == 0
    (g.data / "snapshots").mkdir(exist_ok=True)
    copied = []
    for f in snaps(other):
        shutil.copy2(f, g.data / "snapshots" / f.name)
        copied.append(int(f.stem))
    assert copied
    if theirs == "behind":
        assert max(copied) < before["last_seq"], (copied, before)
    else:
        assert max(copied) > before["last_seq"], (copied, before)
    g.start()
    c = g.client(timeout=30)
    assert snapshot_of_state(c, accounts) == before
    check_state_is_replay(c)
    check_keys(c, keyed)
    log = since_last_start(g)
    if theirs == "behind":
        assert "does not match" in log, "the foreign snapshot is not reported:\n" + log
    # The snapshotter was reset too: it writes this log's snapshots again and
    # a later restart from them is exact.
    r = expect_ok(c.transfer(accounts[1], accounts[2], 5))
    assert r["seq"] == before["last_seq"] + 1
    after = snapshot_of_state(c, accounts)
    assert g.stop() == 0
    g.start()
    c = g.client(timeout=30)
    assert snapshot_of_state(c, accounts) == after
    check_state_is_replay(c)


def test_recovery_with_and_without_snapshots_agree(fresh_group):
    g = fresh_group("--snapshot-every", str(EVERY))
    accounts, keyed = populated(g, 500)
    c = g.client(timeout=30)
    before = snapshot_of_state(c, accounts)
    rep = reports(c)
    assert g.stop() == 0
    assert snaps(g)

    g.start()  # from the newest snapshot plus the tail of the log
    c = g.client(timeout=30)
    with_snap = snapshot_of_state(c, accounts)
    log = since_last_start(g)
    assert "the resolver loaded the snapshot at" in log, log
    assert reports(c) == rep
    check_keys(c, keyed)
    check_state_is_replay(c)
    assert g.stop() == 0

    shutil.move(str(g.data / "snapshots"), str(g.base / "snapshots.away"))
    g.start()  # from the whole log
    c = g.client(timeout=30)
    without = snapshot_of_state(c, accounts)
    log = since_last_start(g)
    assert "loaded the snapshot at" not in log and "replaying events 1.." in log, log
    assert reports(c) == rep
    check_keys(c, keyed)
    check_state_is_replay(c)

    assert with_snap == before
    assert without == before
