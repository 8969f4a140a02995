"""Statements (issue 16, item 2): the op `statement`, served by the logger
from its account index (DATA/account.idx), the CLI's `esbank statement` and
REST's GET /api/account/statement.

Every check compares with a replay of `events`: the entries of one account
(seq, ts, type, signed amount, counterparty, running balance), the opening
and closing balance of a period, paging with after_seq / limit / more; the
index deleted or cut while the group is stopped is rebuilt and answers the
same; after a kill -9 of the logger under load, a statement equals the
events; an event held in its fdatasync is not in a statement yet. REST and
the CLI (table, --csv, --json) are checked the same way.
"""

import csv
import io
import json
import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import build_dir, cmdline, descendants, expect_err, expect_ok, open_verified

DOLLARS = lambda cents: ("-" if cents < 0 else "") + "%d.%02d" % divmod(abs(cents), 100)

INDEX = "account.idx"


def expected(events, account):
    """The statement a replay of events gives: a list of entry dicts."""
    out, bal = [], 0
    for ev in events:
        t = ev["type"]
        if t == "account_opened" and ev["account"] == account:
            amt, cp = ev["balance"], None
        elif t == "money_transferred" and ev["from"] == account:
            amt, cp = -ev["amount"], ev["to"]
        elif t == "money_transferred" and ev["to"] == account:
            amt, cp = ev["amount"], ev["from"]
        elif t == "money_withdrawn" and ev["account"] == account:
            amt, cp = -ev["amount"], None
        else:
            continue
        bal += amt
        out.append({"seq": ev["seq"], "ts": ev["ts"], "type": t, "amount": amt,
                    "counterparty": cp, "balance": bal})
    return out


def statement(c, account, **kw):
    r = expect_ok(c.call("statement", account=account, **kw))
    del r["id"]
    return r


def all_pages(c, account, limit, **kw):
    entries, after = [], 0
    while True:
        r = statement(c, account, after_seq=after, limit=limit, **kw)
        assert len(r["entries"]) <= limit
        entries += r["entries"]
        if not r["more"]:
            return entries, r
        assert r["entries"], r
        after = r["entries"][-1]["seq"]


def traffic(c, accounts, n):
    """n transfers and withdrawals among accounts, all acknowledged."""
    for i in range(n):
        a, b = accounts[i % len(accounts)], accounts[(i * 7 + 1) % len(accounts)]
        if i % 5 == 4:
            expect_ok(c.withdraw(a, 1 + i % 50))
        elif a != b:
            r = c.transfer(a, b, 1 + (i * 37) % 900)
            assert r.get("ok") or r.get("error") == "insufficient_funds", r


@pytest.fixture(scope="module")
def history(group):
    c = group.client()
    accounts = [open_verified(c) for _ in range(4)]
    traffic(c, accounts, 120)
    yield accounts
    c.close()


def test_statement_equals_replay_of_events(group, client, history):
    events, _ = client.all_events()
    for a in history:
        want = expected(events, a)
        r = statement(client, a)
        assert r["account"] == a
        assert r["entries"] == want
        assert r["opening_balance"] == 0
        assert r["closing_balance"] == want[-1]["balance"]
        assert r["closing_balance"] == expect_ok(client.get_account(a))["balance"]
        assert r["more"] is False


def test_statement_period_balances(group, client, history):
    events, _ = client.all_events()
    a = history[1]
    want = expected(events, a)
    assert len(want) > 10
    since, until = want[3]["ts"], want[-3]["ts"]
    inside = [e for e in want if since <= e["ts"] < until]
    before = [e for e in want if e["ts"] < since]
    r = statement(client, a, since=since, until=until)
    assert r["entries"] == inside
    assert r["opening_balance"] == before[-1]["balance"]
    closing = [e for e in want if e["ts"] < until][-1]["balance"]
    assert r["closing_balance"] == closing
    # a period with nothing in it: both balances are the balance then
    later = want[-1]["ts"] + 1
    r = statement(client, a, since=later, until=later + 1000)
    assert r["entries"] == [] and r["more"] is False
    assert r["opening_balance"] == r["closing_balance"] == want[-1]["balance"]
    r = statement(client, a, until=want[0]["ts"])
    assert r["entries"] == [] and r["opening_balance"] == r["closing_balance"] == 0


def test_statement_pages(group, client, history):
    events, _ = client.all_events()
    a = history[2]
    want = expected(events, a)
    got, last = all_pages(client, a, 7)
    assert got == want
    assert last["closing_balance"] == want[-1]["balance"]
    r = statement(client, a, after_seq=want[-1]["seq"])
    assert r["entries"] == [] and r["more"] is False


def test_statement_errors(group, client, history):
    expect_err(client.call("statement", account="1000000000000000"), "not_found")
    expect_err(client.call("statement", account="12"), "not_found")
    expect_err(client.call("statement"), "bad_request")
    expect_err(client.call("statement", account=12), "bad_request")
    expect_err(client.call("statement", account=history[0], since="x"), "bad_request")
    expect_err(client.call("statement", account=history[0], since=5, until=4), "bad_request")
    expect_err(client.call("statement", account=history[0], limit=0), "bad_request")
    expect_err(client.call("statement", account=history[0], after_seq=-1), "bad_request")
    expect_err(client.call("statement", account=history[0], limit=1.5), "bad_request")
    assert client.ping()["ok"]


def esbank(group, *args):
    exe = build_dir() / "client" / "esbank"
    p = subprocess.run([str(exe), "--run", str(group.run)] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=60)
    return p


def same_for_all(c, accounts):
    events, _ = c.all_events()
    for a in accounts:
        assert statement(c, a)["entries"] == expected(events, a), a


def test_cli_csv_table_and_json(group, client, history):
    events, _ = client.all_events()
    a = history[3]
    want = expected(events, a)
    p = esbank(group, "statement", a, "--csv")
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(io.StringIO(p.stdout)))
    assert [int(r["seq"]) for r in rows] == [e["seq"] for e in want]
    assert [r["amount"] for r in rows] == [DOLLARS(e["amount"]) for e in want]
    assert [r["balance"] for r in rows] == [DOLLARS(e["balance"]) for e in want]
    assert [r["counterparty"] for r in rows] == [e["counterparty"] or "" for e in want]
    p = esbank(group, "statement", a)
    assert p.returncode == 0, p.stderr
    assert "Opening balance:  $0.00" in p.stdout
    assert "Closing balance:  $%s" % "{:,.2f}".format(want[-1]["balance"] / 100) in p.stdout
    p = esbank(group, "--json", "statement", a)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["entries"] == want
    # a month with nothing in it, a bad month, an unknown account
    p = esbank(group, "statement", a, "--month", "2001-02")
    assert p.returncode == 0 and "no transactions" in p.stdout, p.stdout + p.stderr
    assert esbank(group, "statement", a, "--month", "2001-13").returncode == 100
    assert esbank(group, "statement", "1000000000000001").returncode == 100


def test_index_deleted_or_cut_while_stopped_is_rebuilt(fresh_group):
    g = fresh_group()
    c = g.client()
    accounts = [open_verified(c) for _ in range(3)]
    traffic(c, accounts, 60)
    before = {a: statement(c, a) for a in accounts}
    idx = g.data / INDEX
    for damage in ("delete", "cut", "garbage"):
        g.stop()
        if damage == "delete":
            idx.unlink()
        elif damage == "cut":
            os.truncate(idx, os.path.getsize(idx) - 64 * 5 - 17)
        else:
            with open(idx, "r+b") as f:
                f.seek(8 + 64 * 10)
                f.write(b"\xff" * 64)
        g.start()
        c = g.client()
        for a in accounts:
            assert statement(c, a) == before[a], (damage, a)
    traffic(c, accounts, 10)  # and it is kept up after the rebuild
    same_for_all(c, accounts)


def test_logger_kill9_under_load(fresh_group):
    g = fresh_group()
    c = g.client()
    accounts = [open_verified(c) for _ in range(4)]
    stop = threading.Event()

    def load():
        lc = g.client()
        i = 0
        while not stop.is_set():
            a, b = accounts[i % 4], accounts[(i + 1) % 4]
            lc.transfer(a, b, 1 + i % 7)  # unavailable while the logger is down is fine
            i += 1
        lc.close()

    t = threading.Thread(target=load)
    t.start()
    time.sleep(0.5)
    logger = [p for p in descendants(g.proc.pid) if "esbank-logger" in cmdline(p)]
    assert logger
    os.kill(logger[0], signal.SIGKILL)
    time.sleep(1.0)
    stop.set()
    t.join()
    g.wait_live()
    c = g.client()
    same_for_all(c, accounts)


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    import test_http as th
    th.need(th.ESBANKD, th.CLIENT, th.GATEWAY)
    g = th.Group(tmp_path_factory.mktemp("web"))
    try:
        g.wait_ready()
        yield g
    finally:
        th.stop(g.proc)
        g.log.close()


def rfc3339(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def test_rest_statement(web):
    import test_http as th
    from esbank_proto import Client
    a, tok = th.verified_account(web, "sta")
    b, _ = th.verified_account(web, "stb")
    for i in range(5):
        assert web.post("/api/money_transfer", {"to": b, "amount": 100 + i}, token=tok).status == 200
    assert web.post("/api/withdraw", {"amount": 250}, token=tok).status == 200
    c = Client(str(web.run / "bus.sock"))
    events, _ = c.all_events()
    c.close()
    want = expected(events, a)
    r = web.get("/api/account/statement", token=tok)
    assert r.status == 200, r
    body = r.json()
    assert body["account"] == a and body["more"] is False
    assert body["opening_balance"] == 0 and body["closing_balance"] == want[-1]["balance"]
    assert body["entries"] == [dict(e, ts=rfc3339(e["ts"])) for e in want]
    r = web.get("/api/account/statement?times=ms&limit=3", token=tok)
    assert r.json()["entries"] == want[:3] and r.json()["more"] is True
    after = want[2]["seq"]
    r = web.get("/api/account/statement?times=ms&after_seq=%d" % after, token=tok)
    assert r.json()["entries"] == want[3:]
    month = time.strftime("%Y-%m", time.gmtime(want[0]["ts"] // 1000))
    r = web.get("/api/account/statement?times=ms&month=" + month, token=tok)
    assert r.status == 200 and r.json()["entries"] == [
        e for e in want if time.strftime("%Y-%m", time.gmtime(e["ts"] // 1000)) == month]
    since = rfc3339(want[2]["ts"])
    r = web.get("/api/account/statement?times=ms&since=" + since, token=tok)
    assert r.json()["entries"] == [e for e in want if e["ts"] >= want[2]["ts"]]
    assert r.json()["opening_balance"] == [e for e in want if e["ts"] < want[2]["ts"]][-1]["balance"]
    r = web.get("/api/account/statement?month=2001-02", token=tok)
    assert r.status == 200 and r.json()["entries"] == []
    for q in ("month=2026-13", "month=x", "since=yesterday", "month=2026-11&since=2026-11-02",
              "since=2026-11-02&until=2026-11-01", "limit=0", "after_seq=-1"):
        r = web.get("/api/account/statement?" + q, token=tok)
        assert r.status == 400 and r.json()["error"] == "bad_request", (q, r)
    assert web.get("/api/account/statement").status == 401


def test_only_durable_events(tmp_path):
    """An event written but not yet fdatasync'd is not in a statement."""
    from conftest import Group
    from faultshim import Faults
    faults = Faults(tmp_path)
    g = Group(tmp_path / "g", env=faults.env())
    try:
        g.start()
        c = g.client()
        a, b = open_verified(c), open_verified(c)
        before = statement(c, a)
        faults.set("fsync pause events.log")
        rid = c.send("transfer", {"from": a, "to": b, "amount": 1234})
        faults.wait_paused()
        other = g.client()
        assert statement(other, a) == before  # held in fdatasync: not durable yet
        faults.clear()
        seq = expect_ok(c.reply(rid, timeout=10))["seq"]
        after = statement(other, a)
        assert after["entries"][-1]["seq"] == seq and after["entries"][-1]["amount"] == -1234
    finally:
        faults.clear()
        g.cleanup()
