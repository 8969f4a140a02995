"""The "transfers" op (issue 15, item 1): many transfers in one request.

test_items_answer_as_single_transfers: a batch of good and bad items (every
rule, keys new, repeated in the batch, repeated from a single transfer, in
conflict) on one set of accounts, and the same transfers sent one by one on
a twin set with the same balances: every result is the single transfer's
(seq aside), and the balances end equal.

test_atomic_all_or_none: atomic batches whose failing item fails only
because of the items before it (funds, a key reused in the batch) are
refused with that item's index and apply nothing (last_seq and head_hash
unchanged); one that succeeds only thanks to an earlier item is applied.

test_limits: an empty list, 8,193 items, a malformed item, a non-boolean
atomic: bad_request, nothing applied; 8,192 items are answered, one event
each; 8,192 items with 64-byte keys fit in a frame; with amounts of 2^32
cents or more they do not (bad_frame closes the connection) and nothing is
applied.

test_reply_only_once_durable: right after the reply to a batch of 2,000 the
logger is killed (SIGKILL): every event of the batch is already in
events.log.

test_no_reply_while_the_fsync_is_held: with the logger's fdatasync held
(the fault shim), a batch gets no reply; once released, the reply comes.

test_cli_file: `esbank transfer --file payroll.csv` (from,to,amount[,key])
prints a summary, --json one result per line; a second run with the same
keys applies nothing new.
"""

import json
import os
import subprocess

import pytest

from conftest import Group, build_dir, expect_err, expect_ok
from faultshim import Faults
from crashkit import kill_child, log_records, open_verified_many, wait_restarted
from esbank_proto import ConnectionClosed

BATCH_MAX = 8192


def st(c):
    return expect_ok(c.status())


def transfers(c, items, atomic=None, timeout=60):
    fields = {"transfers": items}
    if atomic is not None:
        fields["atomic"] = atomic
    return c.call("transfers", fields, timeout=timeout)


def strip_seq(r):
    return {k: v for k, v in r.items() if k not in ("seq", "id", "message")}


@pytest.fixture(scope="module")
def accts(group):
    c = group.client()
    a = open_verified_many(group, c, 8)
    unverified = expect_ok(c.open_account("bulk-unv@example.com", "password-1"))["account"]
    c.close()
    return a, unverified


def item(frm, to, amount, key=None):
    it = {"from": frm, "to": to, "amount": amount}
    if key is not None:
        it["key"] = key
    return it


def plan(a, b, cc, unv, kp):
    """The mixed list, on accounts a, b, cc; kp prefixes the keys."""
    return [
        item(a, b, 100),
        item(a, b, 10 ** 9),                    # insufficient_funds
        item(a, a, 5),                          # same_account
        item(a, "9999999999999999", 5),         # not_found
        item(a, "12", 5),                       # not_found (malformed number)
        item(a, b, 0),                          # invalid_amount
        item(a, b, -3),                         # invalid_amount
        item(a, unv, 5),                        # not_verified
        item(a, cc, 700, kp + "k1"),            # new key
        item(a, cc, 700, kp + "k1"),            # the same again: its result
        item(a, cc, 701, kp + "k1"),            # key_conflict
        item(a, cc, 50, kp + "single"),         # duplicate of a single transfer
        item(a, cc, 51, kp + "other"),          # key_conflict with a single one
        item(b, a, 100000),                     # b got 100 above: all of it
        item(b, a, 1),                          # insufficient_funds now
    ]


def test_items_answer_as_single_transfers(group, accts):
    (a1, b1, c1, a2, b2, c2, _, _), unv = accts
    c = group.client()
    for kp, (a, cc) in (("p1-", (a1, c1)), ("p2-", (a2, c2))):
        expect_ok(c.transfer(a, cc, 50, key=kp + "single"))
        expect_ok(c.transfer(a, cc, 40, key=kp + "other"))
    bulk = expect_ok(transfers(c, plan(a1, b1, c1, unv, "p1-")))
    singles = [c.transfer(i["from"], i["to"], i["amount"], key=i.get("key"))
               for i in plan(a2, b2, c2, unv, "p2-")]
    results = bulk["results"]
    assert len(results) == len(singles)
    for i, (r, s) in enumerate(zip(results, singles)):
        assert strip_seq(r) == strip_seq(s), (i, r, s)
        if not s["ok"]:
            assert isinstance(r["message"], str) and r["message"], r
    assert results[9]["seq"] == results[8]["seq"]  # the key's original result
    assert results[11]["seq"] < results[0]["seq"]  # the single transfer's
    seqs = [r["seq"] for r in results if r["ok"] and r is not results[9]
            and r is not results[11]]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # one event each, in order
    for x, y in ((a1, a2), (b1, b2), (c1, c2)):
        assert (expect_ok(c.get_account(x))["balance"] ==
                expect_ok(c.get_account(y))["balance"])
    c.close()


def test_atomic_all_or_none(group, accts):
    (_, _, _, _, _, _, a, b), _ = accts
    c = group.client()
    bal = expect_ok(c.get_account(a))["balance"]
    before = st(c)
    for items, index, err in (
        ([item(a, b, bal - 10), item(a, b, 10), item(a, b, 1)], 2, "insufficient_funds"),
        ([item(a, b, 1, "atom-k"), item(a, b, 1, "atom-k"), item(a, b, 2, "atom-k")],
         2, "key_conflict"),
        ([item(a, b, 1), item(a, a, 1)], 1, "same_account"),
    ):
        r = expect_err(transfers(c, items, atomic=True), err)
        assert r["index"] == index, r
        assert "nothing was applied" in r["message"], r
    after = st(c)
    assert (after["last_seq"], after["head_hash"]) == (before["last_seq"], before["head_hash"])
    assert expect_ok(c.get_account(a))["balance"] == bal
    # b can pass on only what the batch gave it first
    bb = expect_ok(c.get_account(b))["balance"]
    r = expect_ok(transfers(c, [item(a, b, bal), item(b, a, bb + bal)], atomic=True))
    assert [x["balance"] for x in r["results"]] == [0, 0]
    assert st(c)["last_seq"] == before["last_seq"] + 2
    c.close()


def test_limits(group, accts):
    (a, b, *_), _ = accts
    c = group.client()
    before = st(c)
    good = item(a, b, 1)
    for fields, why in (
        ({"transfers": []}, "1 to 8192"),
        ({"transfers": [good] * (BATCH_MAX + 1)}, "1 to 8192"),
        ({"transfers": [good] * 5 + [item(b, a, "1")] + [good]}, "transfers[5]"),
        ({"transfers": [good, 7]}, "transfers[1]"),
        ({"transfers": [good, {"from": b, "amount": 1}]}, "transfers[1]"),
        ({"transfers": [good, item(b, a, 1, "")]}, "transfers[1]"),
        ({"transfers": [good], "atomic": 1}, "atomic"),
        ({"transfers": good}, "array"),
        ({}, "array"),
    ):
        r = expect_err(c.call("transfers", fields, timeout=30), "bad_request")
        assert why in r["message"], (why, r)
    assert st(c)["last_seq"] == before["last_seq"]
    r = expect_ok(transfers(c, [good] * BATCH_MAX))
    seqs = [x["seq"] for x in r["results"]]
    assert seqs == list(range(before["last_seq"] + 1, before["last_seq"] + 1 + BATCH_MAX))
    # 8,192 items with 64-byte keys fit in a frame (991,263 bytes) ...
    big = [item(a, b, 1, "%064d" % i) for i in range(BATCH_MAX)]
    r = expect_ok(transfers(c, big))
    assert all(x["ok"] for x in r["results"])
    # ... but not with amounts of 2^32 cents or more (9 bytes each): the frame
    # is over 1 MiB, bad_frame closes the connection, nothing is applied
    last = st(c)["last_seq"]
    huge = [item(a, b, 2 ** 32, "%064d" % i) for i in range(BATCH_MAX)]
    with pytest.raises((ConnectionClosed, BrokenPipeError, ConnectionResetError)):
        transfers(c, huge)  # the bus closes as soon as it reads the length
    c = group.client()
    assert st(c)["last_seq"] == last
    c.close()


def test_reply_only_once_durable(group, accts):
    (_, _, _, _, _, _, a, b), _ = accts
    c = group.client()
    r = expect_ok(transfers(c, [item(a, b, 1), item(b, a, 1)] * 1000))
    old = kill_child(group, "logger")
    assert all(x["ok"] for x in r["results"]), r["results"][:2]
    seqs = {x["seq"] for x in r["results"]}
    logged = {seq for _, _, seq in log_records(group.data / "events.log")}
    assert seqs <= logged, sorted(seqs - logged)[:5]
    wait_restarted(group, "logger", old)
    c.close()


def test_no_reply_while_the_fsync_is_held(tmp_path):
    faults = Faults(tmp_path)
    g = Group(tmp_path / "g", env=faults.env())
    try:
        g.start()
        c = g.client()
        a, b = open_verified_many(g, c, 2)
        faults.set("fsync pause events.log")
        rid = c.send("transfers", {"transfers": [item(a, b, 1), item(b, a, 1)] * 500})
        faults.wait_paused()
        with pytest.raises((TimeoutError, OSError)):
            c.reply(rid, timeout=0.5)
        faults.clear()
        r = expect_ok(c.reply(rid, timeout=30))
        assert len(r["results"]) == 1000 and all(x["ok"] for x in r["results"])
        assert st(c)["durable_seq"] >= r["results"][-1]["seq"]
        c.close()
    finally:
        faults.clear()
        g.cleanup()


def esbank(group, *args):
    argv = [str(build_dir() / "client" / "esbank"), "--run", str(group.run)] + list(args)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_cli_file(group, accts, tmp_path):
    (_, _, _, a, b, cc, _, _), _ = accts
    c = group.client()
    bal = {x: expect_ok(c.get_account(x))["balance"] for x in (a, b, cc)}
    lines = ["from,to,amount,key", "# payroll, December", ""]
    lines += ["%s,%s,0.25,pay-%d" % (a, b if i % 2 else cc, i) for i in range(2500)]
    lines += ["%s,%s,0.01" % (a, a), "%s,%s,$2" % (b, cc)]
    path = tmp_path / "payroll.csv"
    path.write_text("\n".join(lines) + "\n")
    r = esbank(group, "transfer", "--file", str(path), "--batch", "1000")
    assert r.returncode == 100, (r.stdout, r.stderr)  # one line was refused
    assert "line 2504: %s -> %s $0.01: " % (a, a) in r.stdout, r.stdout
    assert "(same_account)" in r.stdout, r.stdout
    assert "2502 transfers: 2501 done ($627.00 moved), 1 refused." in r.stdout, r.stdout
    assert expect_ok(c.get_account(a))["balance"] == bal[a] - 62500
    assert expect_ok(c.get_account(cc))["balance"] == bal[cc] + 1250 * 25 + 200
    # again, --json: the keyed lines are retries (nothing new), the rest new
    last = st(c)["last_seq"]
    r = esbank(group, "--json", "transfer", "--file", str(path), "--batch", "8192")
    assert r.returncode == 100, r.stderr
    objs = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(objs) == 2503 and objs[-1]["summary"] == {
        "transfers": 2502, "sent": 2502, "done": 2501, "refused": 1, "amount": 62700}, objs[-1]
    assert objs[0]["line"] == 4 and objs[0]["result"]["ok"] is True, objs[0]
    assert objs[2500]["result"]["error"] == "same_account", objs[2500]
    assert st(c)["last_seq"] == last + 1  # only the unkeyed $2 again
    # a malformed line: nothing is sent
    path.write_text("%s,%s,1\n%s,%s,lots\n" % (a, b, a, b))
    r = esbank(group, "transfer", "--file", str(path))
    assert r.returncode == 100 and ":2: " in r.stderr and "nothing was sent" in r.stderr, r.stderr
    assert st(c)["last_seq"] == last + 1
    c.close()


def test_bench_batch(group):
    c = group.client()
    before = st(c)["last_seq"]
    r = esbank(group, "--json", "bench", "--data", str(group.data), "--batch", "300",
               "--count", "1000", "--accounts", "10", "--connections", "2",
               "--inflight", "2")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout.splitlines()[-1])
    assert rep["requests"] == 1000 and rep["outcomes"] == {"ok": 1000}, rep
    assert set(rep["ops"]) == {"transfer"} or all(
        o["count"] == 0 for k, o in rep["ops"].items() if k != "transfer"), rep
    assert st(c)["last_seq"] == before + 2 * 10 + 1000  # open + verify, then one each
    c.close()
