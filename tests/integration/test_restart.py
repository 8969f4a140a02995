"""Restarts: a clean stop (SIGTERM) and start on the same data directory gives
back exactly the same state, log and head hash; idempotency keys survive; and
after kill -9 of the whole group every acknowledged command is still there.
"""

import os
import re
import signal
import threading
import time

import pytest

from conftest import (OPENING_BALANCE, alive, cmdline, descendants, expect_err, expect_ok,
                      new_password, open_account, open_verified)
from esbank_proto import Client, ConnectionClosed


def workload(c):
    """A mix of every command; returns what later checks need."""
    g = c.group
    accts = [open_verified(c) for _ in range(4)]
    pw = new_password()
    unverified = open_account(c, password=pw)
    old_code = g.wait_code(unverified)
    expect_ok(c.reissue_code(unverified))
    new_code = g.wait_code(unverified, exclude={old_code})
    a, b, d, e = accts
    keyed = {}
    for i in range(10):
        k = "rk-%d-%s" % (i, new_password())
        keyed[k] = (("transfer", {"from": a, "to": b, "amount": 100 + i, "key": k}),
                    expect_ok(c.transfer(a, b, 100 + i, key=k)))
    k = "rw-" + new_password()
    keyed[k] = (("withdraw", {"account": d, "amount": 555, "key": k}),
                expect_ok(c.withdraw(d, 555, key=k)))
    expect_ok(c.transfer(b, e, 4321))
    expect_ok(c.withdraw(e, 1))
    return {"accounts": accts + [unverified], "keyed": keyed, "password": pw,
            "unverified": unverified, "old_code": old_code, "new_code": new_code}


def full_state(c, accounts):
    evs, last = c.all_events()
    st = expect_ok(c.status())
    accs = {}
    for a in accounts:
        r = expect_ok(c.get_account(a))
        del r["id"]
        accs[a] = r
    return {"accounts": accs, "events": evs, "last_seq": last,
            "head_hash": st["head_hash"], "durable_seq": st["durable_seq"],
            "sum": expect_ok(c.call("sum_transactions"))["sum"],
            "inactive": expect_ok(c.call("inactive_users"))["total"]}


def assert_same_state(before, after):
    assert after["accounts"] == before["accounts"]
    assert after["last_seq"] == before["last_seq"]
    assert after["durable_seq"] == before["durable_seq"]
    assert after["events"] == before["events"]
    assert after["head_hash"] == before["head_hash"]
    assert after["sum"] == before["sum"]
    assert after["inactive"] == before["inactive"]


def clean_stop(g):
    rc = g.stop()
    assert rc == 0, "esbankd exit status on SIGTERM: %r" % (rc,)
    assert not g.last_stop_leftovers, "processes left after stop: %r" % g.last_stop_leftovers


def test_ready_fd_reports_ready(fresh_group):
    g = fresh_group(wait_peers=False)
    assert g.ready_via == "pipe", "esbankd --ready-fd never wrote READY"
    c = g.client()
    st = expect_ok(c.status())
    assert st["state"] == "live"
    assert st["last_seq"] == 0 and st["durable_seq"] == 0
    # Ready means ready: the account opened at once gets its mail.
    a = open_account(c)
    g.wait_code(a)


def test_clean_restart_preserves_everything(fresh_group):
    g = fresh_group()
    c = g.client()
    w = workload(c)
    before = full_state(c, w["accounts"])
    clean_stop(g)
    g.start()
    c = g.client()
    assert expect_ok(c.status())["state"] == "live"
    assert_same_state(before, full_state(c, w["accounts"]))

    # Idempotency keys survive: the original reply, and still one event.
    for k, ((op, fields), reply) in w["keyed"].items():
        r = expect_ok(c.call(op, fields))
        assert r["seq"] == reply["seq"] and r["balance"] == reply["balance"], (k, r, reply)
    evs, last = c.all_events()
    assert last == before["last_seq"]
    for k in w["keyed"]:
        assert len([e for e in evs if e.get("key") == k]) == 1
    first_key = next(iter(w["keyed"]))
    expect_err(c.transfer(w["accounts"][0], w["accounts"][1], 1, key=first_key), "key_conflict")

    # Password hashes and code hashes survive.
    u = w["unverified"]
    expect_ok(c.authenticate(u, w["password"]))
    expect_err(c.authenticate(u, w["password"] + "!"), "auth_failed")
    expect_err(c.verify_account(u, w["old_code"]), "wrong_code")
    r = expect_ok(c.verify_account(u, w["new_code"]))
    assert r["seq"] == last + 1

    # The restart sent no mail again: one code per account, two for the
    # account whose code was reissued.
    time.sleep(0.3)
    for acct in w["accounts"]:
        codes = g.codes_for(acct)
        assert len(codes) == (2 if acct == u else 1), (acct, codes)

    # The group goes on: new commands, and another restart.
    a, b = w["accounts"][:2]
    r = expect_ok(c.transfer(u, a, 50))
    assert r["seq"] == last + 2
    again = full_state(c, w["accounts"])
    clean_stop(g)
    g.start()
    assert_same_state(again, full_state(g.client(), w["accounts"]))


def test_restart_from_snapshot(fresh_group):
    g = fresh_group("--snapshot-every", "5")
    c = g.client()
    w = workload(c)
    deadline = time.monotonic() + 10
    while expect_ok(c.status())["snapshot_seq"] == 0:
        assert time.monotonic() < deadline, "no snapshot taken with --snapshot-every 5"
        time.sleep(0.1)
    assert (g.data / "snapshots").is_dir() and any((g.data / "snapshots").iterdir())
    a, b = w["accounts"][:2]
    for _ in range(3):  # events after the newest snapshot, replayed from the log
        expect_ok(c.transfer(a, b, 7))
    before = full_state(c, w["accounts"])
    clean_stop(g)
    g.start()
    c = g.client()
    assert_same_state(before, full_state(c, w["accounts"]))
    for k, ((op, fields), reply) in w["keyed"].items():
        assert expect_ok(c.call(op, fields))["seq"] == reply["seq"]
    r = expect_ok(c.transfer(a, b, 1))
    assert r["seq"] == before["last_seq"] + 1


def test_kill9_keeps_acknowledged_commands(fresh_group):
    g = fresh_group()
    c = g.client(timeout=30)
    a = open_verified(c)
    b = open_verified(c)
    sent = {}  # key -> fields, of every transfer sent
    acked = {}  # key -> reply, of every transfer acknowledged before the kill
    stop = threading.Event()

    def stream():
        # Keeps up to 64 keyed transfers in flight until the group dies.
        s = Client(g.sock_path, timeout=30)
        inflight = {}
        i = 0
        try:
            while not stop.is_set() and not s.eof:
                while len(inflight) < 64:
                    k = "k9-%d-%s" % (i, new_password()[:8])
                    frm, to = (a, b) if i % 2 == 0 else (b, a)
                    fields = {"from": frm, "to": to, "amount": 1 + i % 5, "key": k}
                    sent[k] = fields
                    inflight[s.send("transfer", fields)] = k
                    i += 1
                s._pump(0.01)
                for rid in [r for r in inflight if s._replies.get(r)]:
                    acked[inflight.pop(rid)] = s._replies[rid].popleft()
        except (OSError, TimeoutError, ConnectionClosed):
            pass
        finally:
            s.close()

    t = threading.Thread(target=stream, daemon=True)
    t.start()
    deadline = time.monotonic() + 20
    while len(acked) < 300 and time.monotonic() < deadline:
        time.sleep(0.005)
    killed = g.kill9()  # while transfers are in flight
    stop.set()
    t.join(10)
    assert len(killed) >= 5 and not [p for p in killed if alive(p)], killed
    assert len(acked) >= 300
    for r in acked.values():
        expect_ok(r)
    print("kill -9 with %d of %d transfers acknowledged" % (len(acked), len(sent)))

    g.start()
    c = g.client(timeout=30)
    evs, last = c.all_events()
    print("after restart the log holds %d events" % last)
    assert [e["seq"] for e in evs] == list(range(1, last + 1))
    by_key = {}
    for e in evs:
        if "key" in e:
            assert e["key"] not in by_key, "key %s twice in the log" % e["key"]
            by_key[e["key"]] = e
    for k, reply in acked.items():
        e = by_key.get(k)
        assert e is not None, "acknowledged transfer %s (seq %d) lost" % (k, reply["seq"])
        assert e["seq"] == reply["seq"]
        f = sent[k]
        assert (e["from"], e["to"], e["amount"]) == (f["from"], f["to"], f["amount"])
    # Balances are the replay of the log.
    bal = {a: OPENING_BALANCE, b: OPENING_BALANCE}
    for e in evs:
        if e["type"] == "money_transferred":
            bal[e["from"]] -= e["amount"]
            bal[e["to"]] += e["amount"]
    assert expect_ok(c.get_account(a))["balance"] == bal[a]
    assert expect_ok(c.get_account(b))["balance"] == bal[b]

    # Retrying every key: acknowledged ones get their original reply; every
    # key ends up with exactly one event.
    rids = {k: c.send("transfer", f) for k, f in sent.items()}
    for k, rid in rids.items():
        r = expect_ok(c.reply(rid))
        if k in acked:
            assert r["seq"] == acked[k]["seq"] and r["balance"] == acked[k]["balance"]
        elif k in by_key:
            assert r["seq"] == by_key[k]["seq"]
    evs, last = c.all_events()
    keys = [e["key"] for e in evs if "key" in e]
    assert sorted(keys) == sorted(sent)

    before = full_state(c, [a, b])
    clean_stop(g)
    g.start()
    assert_same_state(before, full_state(g.client(), [a, b]))


@pytest.mark.parametrize("role", ["resolver", "logger"])
def test_child_killed_is_restarted(fresh_group, role):
    g = fresh_group()
    c = g.client()
    a = open_verified(c)
    b = open_verified(c)
    expect_ok(c.transfer(a, b, 10))
    before = full_state(c, [a, b])
    victims = [p for p in descendants(g.proc.pid) if "esbank-" + role in cmdline(p)]
    assert len(victims) == 1, [(p, cmdline(p)) for p in descendants(g.proc.pid)]
    os.kill(victims[0], signal.SIGKILL)
    deadline = time.monotonic() + 20
    while True:
        assert time.monotonic() < deadline, "%s not back within 20 s" % role
        assert g.proc.poll() is None, \
            "esbankd exited (%s) after %s was killed instead of restarting it" % (
                g.proc.returncode, role)
        try:
            c = g.client(timeout=2)
            st = c.status()
            if (st.get("state") == "live" and st["peers"][role]["connected"]
                    and any(p != victims[0] for p in descendants(g.proc.pid)
                            if "esbank-" + role in cmdline(p))):
                break
        except (OSError, TimeoutError, KeyError):
            pass
        time.sleep(0.2)
    c = g.client(timeout=20)
    assert_same_state(before, full_state(c, [a, b]))
    r = expect_ok(c.transfer(a, b, 5))
    assert r["seq"] == before["last_seq"] + 1


def test_torn_tail_is_cut_and_nothing_acknowledged_is_lost(fresh_group):
    g = fresh_group()
    c = g.client()
    a = open_verified(c)
    b = open_verified(c)
    expect_ok(c.transfer(a, b, 99))
    before = full_state(c, [a, b])
    clean_stop(g)
    log = g.data / "events.log"
    size = log.stat().st_size
    with open(log, "ab") as f:  # half a record, as a crash mid-write leaves it
        f.write(b"\x00\x00\x00\x40\x00\x00\x00\x00\x00\x00\x00" + b"\x93" * 17)
    g.start()
    c = g.client()
    assert_same_state(before, full_state(c, [a, b]))
    r = expect_ok(c.transfer(a, b, 1))
    assert r["seq"] == before["last_seq"] + 1
    assert log.stat().st_size > size
    after = full_state(c, [a, b])
    clean_stop(g)
    g.start()
    assert_same_state(after, full_state(g.client(), [a, b]))


def test_damage_before_the_last_record_stops_the_logger(fresh_group):
    g = fresh_group()
    c = g.client()
    addr = "damage-%s@example.com" % new_password()[:10]
    a = open_verified(c, addr)
    b = open_verified(c)
    expect_ok(c.transfer(a, b, 5))
    clean_stop(g)
    log = g.data / "events.log"
    data = bytearray(log.read_bytes())
    at = data.find(a.encode())  # the email is sealed: damage the account number
    assert at > 0, "the first account's number is not in events.log"
    data[at] ^= 0x01  # one digit changed: history rewritten in the first record
    log.write_bytes(bytes(data))
    with pytest.raises((RuntimeError, TimeoutError)):
        g.start(timeout=8)
    last_start = g.log_text().rsplit("===== start", 1)[1].split("\n", 1)[1]
    assert re.search(r"(damag|corrupt).*\bseq\b.*offset|offset.*\bseq\b", last_start, re.I), \
        "the damage (seq and offset) is not reported:\n" + last_start
    assert log.read_bytes() == bytes(data), "the damaged log was changed"
