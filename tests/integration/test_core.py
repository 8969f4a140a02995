"""The core pipeline over bus.sock: every op of PROTOCOL.md, its errors and
their order, idempotency keys, pipelining, events and subscribe, and the
invariants (money, no secrets in the log).

All tests share one group (module scope); each opens its own accounts, and
global checks are computed from the event log rather than from counters.
"""

import datetime
import os
import random
import re
import stat
import string
import time

import pytest

from conftest import (OPENING_BALANCE, expect_err, expect_ok, new_email, new_password,
                      open_account, open_verified)

AMOUNT_MAX = 10 ** 12
UNKNOWN = "1234567890123456"  # well-formed, not an account (16 digits; astronomically unlikely)
MALFORMED = ["abc", "", "0123456789012345", "12345678901234567"]

EVENT_FIELDS = {
    "account_opened": {"account": str, "email_hash": str, "email_enc": bytes, "balance": int},
    "account_verified": {"account": str},
    "code_reissued": {"account": str},
    "money_transferred": {"from": str, "to": str, "amount": int},
    "money_withdrawn": {"account": str, "amount": int},
}
OP_EVENT = {
    "open_account": "account_opened",
    "verify_account": "account_verified",
    "reissue_code": "code_reissued",
    "transfer": "money_transferred",
    "withdraw": "money_withdrawn",
}


def last_seq(client):
    return expect_ok(client.status())["last_seq"]


def balance(client, acct):
    return expect_ok(client.get_account(acct))["balance"]


def unknown_account(client):
    n = int(UNKNOWN)
    while client.get_account(str(n)).get("error") != "not_found":
        n += 1
    return str(n)


def event_at(client, seq):
    r = expect_ok(client.events(from_=seq, limit=1))
    assert r["events"] and r["events"][0]["seq"] == seq, r
    return r["events"][0]


def events_with_key(client, key):
    evs, _ = client.all_events()
    return [e for e in evs if e.get("key") == key]


# -- opening and reading accounts ------------------------------------------


def test_three_accounts_opened(client):
    accts = [open_account(client) for _ in range(3)]
    assert len(set(accts)) == 3
    for a in accts:
        r = expect_ok(client.get_account(a))
        assert r["account"] == a
        assert r["balance"] == OPENING_BALANCE
        assert r["verified"] is False
        assert r["last_activity"] is None
        assert "last_activity" in r
        assert isinstance(r["opened_at"], int)
        opened = [e for e in client.all_events()[0]
                  if e["type"] == "account_opened" and e["account"] == a]
        assert len(opened) == 1
        assert r["opened_at"] == opened[0]["ts"]
        assert opened[0]["balance"] == OPENING_BALANCE


def test_open_account_reply_and_email_lowercased(client):
    mixed = "MiXeD.%s@Example.COM" % new_password()[-8:]
    a = open_account(client, mixed)
    r = expect_ok(client.get_account(a))
    assert r["email"] == mixed.lower()


def test_duplicate_email_already_exists(client):
    addr = new_email("dup")
    open_account(client, addr)
    before = last_seq(client)
    expect_err(client.open_account(addr, new_password()), "already_exists")
    expect_err(client.open_account(addr.upper(), new_password()), "already_exists")
    expect_err(client.open_account(addr.capitalize(), new_password()), "already_exists")
    assert last_seq(client) == before


@pytest.mark.parametrize("fields", [
    {"password": "longenough1"},
    {"email": "x%d@example.com"},
    {"email": "no-at-sign.example.com", "password": "longenough1"},
    {"email": "two@@example.com", "password": "longenough1"},
    {"email": "a@b@example.com", "password": "longenough1"},
    {"email": "@example.com", "password": "longenough1"},
    {"email": "user@", "password": "longenough1"},
    {"email": "us er@example.com", "password": "longenough1"},
    {"email": "user\t@example.com", "password": "longenough1"},
    {"email": "user\x01@example.com", "password": "longenough1"},
    {"email": "a@", "password": "longenough1"},
    {"email": "u" * 250 + "@x.io", "password": "longenough1"},
    {"email": "short%d@example.com", "password": "1234567"},
    {"email": "long%d@example.com", "password": "p" * 1025},
    {"email": 12345, "password": "longenough1"},
    {"email": "typ%d@example.com", "password": 12345678},
    {"email": "nil%d@example.com", "password": None},
], ids=lambda f: repr(f)[:40])
def test_open_account_bad_request(client, fields):
    fields = {k: (v % os.getpid() if isinstance(v, str) and "%d" in v else v)
              for k, v in fields.items()}
    before = last_seq(client)
    expect_err(client.call("open_account", fields), "bad_request")
    assert last_seq(client) == before


def test_open_account_limits_accepted(client):
    # 8-byte password and a 254-byte email are in range.
    local = "e%s" % new_password()[-10:]
    addr = local + "@" + "d" * (254 - len(local) - 1 - 3) + ".io"
    assert len(addr) == 254
    pw8 = "Zq" + "".join(random.choice(string.ascii_letters) for _ in range(6))
    a = open_account(client, addr, pw8)
    assert expect_ok(client.get_account(a))["email"] == addr
    expect_ok(client.authenticate(a, pw8))
    expect_err(client.authenticate(a, pw8[:7]), "auth_failed")


# -- verification ----------------------------------------------------------


def test_verify_flow(client):
    g = client.group
    addr = new_email("ver")
    a = open_account(client, addr)
    code = g.wait_code(a)
    # The mail goes to the account's address.
    _, msg, _ = g.wait_mail(lambda m: a in m[2], what="verification mail")
    assert addr in str(msg["To"]).lower()
    expect_err(client.verify_account(a, code + "x"), "wrong_code")
    assert expect_ok(client.get_account(a))["verified"] is False
    r = expect_ok(client.verify_account(a, code))
    assert isinstance(r["seq"], int)
    ev = event_at(client, r["seq"])
    assert ev["type"] == "account_verified" and ev["account"] == a
    assert expect_ok(client.get_account(a))["verified"] is True
    before = last_seq(client)
    expect_err(client.verify_account(a, code), "already_verified")
    # already_verified comes before wrong_code
    expect_err(client.verify_account(a, "not-the-code"), "already_verified")
    assert last_seq(client) == before


def test_wrong_code(client):
    a = open_account(client)
    code = client.group.wait_code(a)
    before = last_seq(client)
    expect_err(client.verify_account(a, "A" * len(code)), "wrong_code")
    expect_err(client.verify_account(a, code[:-1]), "wrong_code")
    assert last_seq(client) == before
    assert expect_ok(client.get_account(a))["verified"] is False


def test_reissue_code(client):
    g = client.group
    a = open_account(client)
    old = g.wait_code(a)
    r = expect_ok(client.reissue_code(a))
    ev = event_at(client, r["seq"])
    assert ev["type"] == "code_reissued" and ev["account"] == a
    new = g.wait_code(a, exclude={old})
    assert new != old
    expect_err(client.verify_account(a, old), "wrong_code")
    expect_ok(client.verify_account(a, new))
    expect_err(client.reissue_code(a), "already_verified")


@pytest.mark.parametrize("op", ["verify_account", "reissue_code", "get_account", "withdraw",
                                "transfer_from", "transfer_to"])
def test_unknown_account_not_found(client, op):
    v = open_verified(client)
    before = last_seq(client)
    for bad in [unknown_account(client)] + MALFORMED:
        if op == "verify_account":
            r = client.verify_account(bad, "somecode")
        elif op == "reissue_code":
            r = client.reissue_code(bad)
        elif op == "get_account":
            r = client.get_account(bad)
        elif op == "withdraw":
            r = client.withdraw(bad, 10)
        elif op == "transfer_from":
            r = client.transfer(bad, v, 10)
        else:
            r = client.transfer(v, bad, 10)
        expect_err(r, "not_found")
    assert last_seq(client) == before
    assert balance(client, v) == OPENING_BALANCE


@pytest.mark.parametrize("op,fields", [
    ("get_account", {"account": 1234567890123456}),
    ("get_account", {}),
    ("withdraw", {"account": None, "amount": 5}),
    ("withdraw", {"amount": 5}),
    ("verify_account", {"account": b"1234567890123456", "code": "x"}),
    ("verify_account", {"account": "1234567890123456"}),
    ("verify_account", {"account": "1234567890123456", "code": 5}),
    ("reissue_code", {}),
    ("transfer", {"from": 1, "to": "1234567890123456", "amount": 5}),
    ("transfer", {"from": "1234567890123456", "amount": 5}),
    ("transfer", {"from": "1234567890123456", "to": ["x"], "amount": 5}),
], ids=lambda x: repr(x)[:30])
def test_account_field_wrong_type_bad_request(client, op, fields):
    expect_err(client.call(op, fields), "bad_request")


# -- withdraw --------------------------------------------------------------


def test_withdraw(client):
    g = client.group
    addr = new_email("wd")
    a = open_verified(client, addr)
    r = expect_ok(client.withdraw(a, 2500))
    assert r["balance"] == OPENING_BALANCE - 2500
    acc = expect_ok(client.get_account(a))
    assert acc["balance"] == r["balance"]
    ev = event_at(client, r["seq"])
    assert ev["type"] == "money_withdrawn" and ev["account"] == a and ev["amount"] == 2500
    assert acc["last_activity"] == ev["ts"]
    # A withdrawal notice goes to the account's address.
    g.wait_mail(lambda m: addr in str(m[1]["To"]).lower() and "account_number=" not in m[2],
                what="withdrawal notice to %s" % addr)


def test_withdraw_insufficient_funds_changes_nothing(client):
    a = open_verified(client)
    expect_ok(client.withdraw(a, 1))
    before = expect_ok(client.get_account(a))
    seq = last_seq(client)
    expect_err(client.withdraw(a, OPENING_BALANCE), "insufficient_funds")
    expect_err(client.withdraw(a, AMOUNT_MAX), "insufficient_funds")
    after = expect_ok(client.get_account(a))
    assert dict(after, id=0) == dict(before, id=0)
    assert last_seq(client) == seq


def test_withdraw_whole_balance(client):
    a = open_verified(client)
    r = expect_ok(client.withdraw(a, OPENING_BALANCE))
    assert r["balance"] == 0
    assert balance(client, a) == 0
    expect_err(client.withdraw(a, 1), "insufficient_funds")


# -- verification required -------------------------------------------------


def test_unverified_accounts_rejected(client):
    u = open_account(client)
    v = open_verified(client)
    seq = last_seq(client)
    expect_err(client.withdraw(u, 10), "not_verified")
    expect_err(client.transfer(u, v, 10), "not_verified")
    expect_err(client.transfer(v, u, 10), "not_verified")
    assert last_seq(client) == seq
    assert balance(client, u) == OPENING_BALANCE
    assert balance(client, v) == OPENING_BALANCE


# -- transfer --------------------------------------------------------------


def test_transfer_moves_money(client):
    a = open_verified(client)
    b = open_verified(client)
    r = expect_ok(client.transfer(a, b, 12345))
    assert r["balance"] == OPENING_BALANCE - 12345
    assert balance(client, a) == OPENING_BALANCE - 12345
    assert balance(client, b) == OPENING_BALANCE + 12345
    ev = event_at(client, r["seq"])
    assert (ev["type"], ev["from"], ev["to"], ev["amount"]) == ("money_transferred", a, b, 12345)
    assert "key" not in ev
    assert expect_ok(client.get_account(a))["last_activity"] == ev["ts"]
    assert expect_ok(client.get_account(b))["last_activity"] == ev["ts"]


def test_transfer_insufficient_and_whole_balance(client):
    a = open_verified(client)
    b = open_verified(client)
    seq = last_seq(client)
    expect_err(client.transfer(a, b, OPENING_BALANCE + 1), "insufficient_funds")
    assert last_seq(client) == seq
    assert balance(client, a) == OPENING_BALANCE and balance(client, b) == OPENING_BALANCE
    r = expect_ok(client.transfer(a, b, OPENING_BALANCE))
    assert r["balance"] == 0
    assert balance(client, b) == 2 * OPENING_BALANCE
    expect_err(client.transfer(a, b, 1), "insufficient_funds")


def test_transfer_same_account(client):
    a = open_verified(client)
    expect_err(client.transfer(a, a, 10), "same_account")
    assert balance(client, a) == OPENING_BALANCE


@pytest.mark.parametrize("amount", [0, -5, -1, AMOUNT_MAX + 1, -(2 ** 63), 2 ** 64 - 1])
def test_invalid_amount(client, amount):
    a = open_verified(client)
    b = open_verified(client)
    seq = last_seq(client)
    expect_err(client.transfer(a, b, amount), "invalid_amount")
    expect_err(client.withdraw(a, amount), "invalid_amount")
    assert last_seq(client) == seq


def test_amount_max_is_valid(client):
    a = open_verified(client)
    b = open_verified(client)
    expect_err(client.transfer(a, b, AMOUNT_MAX), "insufficient_funds")
    expect_err(client.withdraw(a, AMOUNT_MAX), "insufficient_funds")


@pytest.mark.parametrize("amount", [1.0, 100.5, "100", None, True, b"\x01", [1], {"a": 1}],
                         ids=repr)
def test_amount_wrong_type_bad_request(client, amount):
    a = open_verified(client)
    b = open_verified(client)
    expect_err(client.transfer(a, b, amount), "bad_request")
    expect_err(client.withdraw(a, amount), "bad_request")
    expect_err(client.call("transfer", {"from": a, "to": b}), "bad_request")
    expect_err(client.call("withdraw", {"account": a}), "bad_request")
    assert balance(client, a) == OPENING_BALANCE


# -- order of checks (PROTOCOL.md table) -----------------------------------


def test_error_order_transfer(client):
    v1 = open_verified(client)
    v2 = open_verified(client)
    u1 = open_account(client)
    u2 = open_account(client)
    nf = unknown_account(client)
    cases = [
        # bad_request before everything
        ((v1, v1, 1.5), "bad_request"),
        ((nf, nf, "x"), "bad_request"),
        # invalid_amount before same_account / not_found / not_verified
        ((v1, v1, 0), "invalid_amount"),
        ((nf, v1, -5), "invalid_amount"),
        ((u1, u2, AMOUNT_MAX + 1), "invalid_amount"),
        # same_account before not_found / not_verified / funds
        ((nf, nf, 10), "same_account"),
        ((u1, u1, 10), "same_account"),
        ((v1, v1, AMOUNT_MAX), "same_account"),
        # not_found (from, then to) before not_verified
        ((nf, u1, 10), "not_found"),
        ((u1, nf, 10), "not_found"),
        ((nf, "abc", 10), "not_found"),
        # not_verified (from, then to) before insufficient_funds
        ((u1, v1, AMOUNT_MAX), "not_verified"),
        ((v1, u1, AMOUNT_MAX), "not_verified"),
        ((u1, u2, 10), "not_verified"),
        ((v1, v2, AMOUNT_MAX), "insufficient_funds"),
    ]
    seq = last_seq(client)
    for (frm, to, amount), code in cases:
        r = client.transfer(frm, to, amount)
        assert r.get("error") == code, "transfer %r -> %r" % ((frm, to, amount), r)
        expect_err(r, code)
    assert last_seq(client) == seq


def test_error_order_withdraw_verify_reissue(client):
    v = open_verified(client)
    u = open_account(client)
    nf = unknown_account(client)
    cases = [
        ("withdraw", {"account": nf, "amount": 1.5}, "bad_request"),
        ("withdraw", {"account": nf, "amount": 0}, "invalid_amount"),
        ("withdraw", {"account": u, "amount": -1}, "invalid_amount"),
        ("withdraw", {"account": nf, "amount": AMOUNT_MAX}, "not_found"),
        ("withdraw", {"account": u, "amount": AMOUNT_MAX}, "not_verified"),
        ("withdraw", {"account": v, "amount": AMOUNT_MAX}, "insufficient_funds"),
        ("verify_account", {"account": nf}, "bad_request"),
        ("verify_account", {"account": nf, "code": "x"}, "not_found"),
        ("verify_account", {"account": v, "code": "x"}, "already_verified"),
        ("verify_account", {"account": u, "code": "x"}, "wrong_code"),
        ("reissue_code", {"account": 7}, "bad_request"),
        ("reissue_code", {"account": nf}, "not_found"),
        ("reissue_code", {"account": v}, "already_verified"),
        ("open_account", {"email": "bad", "password": "short"}, "bad_request"),
        ("get_account", {"account": None}, "bad_request"),
    ]
    seq = last_seq(client)
    for op, fields, code in cases:
        r = client.call(op, fields)
        assert r.get("error") == code, "%s %r -> %r" % (op, fields, r)
        expect_err(r, code)
    assert last_seq(client) == seq


# -- authenticate ----------------------------------------------------------


def test_authenticate(client):
    pw = new_password()
    a = open_account(client, password=pw)
    r = expect_ok(client.authenticate(a, pw))
    assert set(r) == {"id", "ok"}, r
    expect_err(client.authenticate(a, pw + "x"), "auth_failed")
    expect_err(client.authenticate(a, pw.upper()), "auth_failed")
    expect_err(client.authenticate(unknown_account(client), pw), "auth_failed")
    expect_err(client.authenticate("abc", pw), "auth_failed")
    expect_err(client.call("authenticate", {"account": a}), "bad_request")
    expect_err(client.call("authenticate", {"password": pw}), "bad_request")
    expect_err(client.authenticate(a, 12345678), "bad_request")
    expect_err(client.authenticate(a, None), "bad_request")
    expect_err(client.authenticate(int(a), pw), "bad_request")


# -- idempotency keys ------------------------------------------------------


def test_same_key_twice_same_reply_one_event(client):
    a = open_verified(client)
    b = open_verified(client)
    key = "k-" + new_password()
    r1 = expect_ok(client.transfer(a, b, 700, key=key))
    r2 = expect_ok(client.transfer(a, b, 700, key=key))
    assert r2["seq"] == r1["seq"] and r2["balance"] == r1["balance"]
    assert {k: v for k, v in r1.items() if k != "id"} == {k: v for k, v in r2.items() if k != "id"}
    assert balance(client, a) == OPENING_BALANCE - 700
    assert balance(client, b) == OPENING_BALANCE + 700
    evs = events_with_key(client, key)
    assert len(evs) == 1 and evs[0]["seq"] == r1["seq"]
    assert (evs[0]["from"], evs[0]["to"], evs[0]["amount"]) == (a, b, 700)


def test_key_retry_after_state_changed_gets_original(client):
    a = open_verified(client)
    key = "w-" + new_password()
    r1 = expect_ok(client.withdraw(a, 1000, key=key))
    expect_ok(client.withdraw(a, OPENING_BALANCE - 1000))
    assert balance(client, a) == 0
    r2 = expect_ok(client.withdraw(a, 1000, key=key))
    assert r2["seq"] == r1["seq"] and r2["balance"] == OPENING_BALANCE - 1000
    assert balance(client, a) == 0
    assert len(events_with_key(client, key)) == 1


def test_key_conflict(client):
    a = open_verified(client)
    b = open_verified(client)
    c = open_verified(client)
    key = "c-" + new_password()
    expect_ok(client.transfer(a, b, 50, key=key))
    seq = last_seq(client)
    expect_err(client.transfer(a, b, 51, key=key), "key_conflict")
    expect_err(client.transfer(a, c, 50, key=key), "key_conflict")
    expect_err(client.transfer(b, a, 50, key=key), "key_conflict")
    expect_err(client.withdraw(a, 50, key=key), "key_conflict")
    # The key is looked up before every rule but bad_request.
    expect_err(client.transfer(a, b, 0, key=key), "key_conflict")
    expect_err(client.transfer(a, a, 50, key=key), "key_conflict")
    expect_err(client.withdraw(unknown_account(client), 50, key=key), "key_conflict")
    expect_err(client.transfer(a, b, 1.5, key=key), "bad_request")
    assert last_seq(client) == seq
    assert balance(client, a) == OPENING_BALANCE - 50
    assert len(events_with_key(client, key)) == 1


def test_rejected_command_does_not_use_key(client):
    a = open_verified(client)
    b = open_verified(client)
    key = "r-" + new_password()
    expect_err(client.withdraw(a, OPENING_BALANCE + 1, key=key), "insufficient_funds")
    expect_err(client.transfer(a, b, 0, key=key), "invalid_amount")
    expect_err(client.transfer(a, b, "x", key=key), "bad_request")
    assert events_with_key(client, key) == []
    r = expect_ok(client.transfer(a, b, 10, key=key))
    evs = events_with_key(client, key)
    assert [e["seq"] for e in evs] == [r["seq"]]


def test_open_account_with_key_is_idempotent(client):
    key = "o-" + new_password()
    addr = new_email("key")
    pw = new_password()
    client.group.passwords.add(pw)
    r1 = expect_ok(client.open_account(addr, pw, key=key))
    r2 = expect_ok(client.open_account(addr, pw, key=key))
    assert (r2["account"], r2["seq"]) == (r1["account"], r1["seq"])
    evs = events_with_key(client, key)
    assert len(evs) == 1 and evs[0]["type"] == "account_opened"
    expect_err(client.open_account(new_email("key"), pw, key=key), "key_conflict")


@pytest.mark.parametrize("key", ["", "k" * 65, "é" * 33, 17, None, b"bin-key", ["k"]],
                         ids=lambda k: repr(k)[:20])
def test_bad_key_is_bad_request(client, key):
    a = open_verified(client)
    seq = last_seq(client)
    expect_err(client.call("withdraw", {"account": a, "amount": 5, "key": key}), "bad_request")
    assert last_seq(client) == seq


def test_key_64_bytes_accepted(client):
    a = open_verified(client)
    key1 = new_password()[:8] + "k" * 56
    key2 = new_password()[:8] + "é" * 28
    assert len(key1.encode()) == 64 and len(key2.encode()) == 64
    r1 = expect_ok(client.withdraw(a, 5, key=key1))
    r2 = expect_ok(client.withdraw(a, 5, key=key2))
    assert event_at(client, r1["seq"])["key"] == key1
    assert event_at(client, r2["seq"])["key"] == key2


# -- pipelining ------------------------------------------------------------


def test_pipelined_transfers_resolved_in_send_order(client):
    a = open_verified(client)
    b = open_verified(client)
    ids = [client.send("transfer", {"from": a, "to": b, "amount": 1 + (i % 7)})
           for i in range(200)]
    replies = [client.reply(i, timeout=30) for i in ids]
    for r in replies:
        expect_ok(r)
    seqs = [r["seq"] for r in replies]
    assert seqs == sorted(seqs) and len(set(seqs)) == 200, seqs
    expected = OPENING_BALANCE
    for i, r in enumerate(replies):
        expected -= 1 + (i % 7)
        assert r["balance"] == expected
    assert balance(client, a) == expected
    assert balance(client, b) == OPENING_BALANCE + (OPENING_BALANCE - expected)


def test_pipelined_mixed_ops_each_get_one_reply(client):
    a = open_verified(client)
    ids = []
    for i in range(50):
        ids.append(client.send("ping"))
        ids.append(client.send("withdraw", {"account": a, "amount": 1}))
        ids.append(client.send("get_account", {"account": a}))
        ids.append(client.send("nope"))
    replies = {i: client.reply(i, timeout=30) for i in ids}
    assert set(replies) == set(ids)
    wd = [replies[ids[k]] for k in range(1, len(ids), 4)]
    assert [r["balance"] for r in wd] == list(range(OPENING_BALANCE - 1, OPENING_BALANCE - 51, -1))
    for k in range(3, len(ids), 4):
        expect_err(replies[ids[k]], "unknown_op")
    # no duplicate or stray replies
    time.sleep(0.2)
    client._pump(0.1)
    assert not any(client._replies.values())


def test_two_connections_interleaved(group):
    c1, c2 = group.client(), group.client()
    a = open_verified(c1)
    b = open_verified(c2)
    i1 = [c1.send("transfer", {"from": a, "to": b, "amount": 3}) for _ in range(60)]
    i2 = [c2.send("transfer", {"from": b, "to": a, "amount": 2}) for _ in range(60)]
    s1 = [expect_ok(c1.reply(i, 30))["seq"] for i in i1]
    s2 = [expect_ok(c2.reply(i, 30))["seq"] for i in i2]
    assert s1 == sorted(s1) and s2 == sorted(s2)
    assert not set(s1) & set(s2)
    assert balance(c1, a) == OPENING_BALANCE - 60 * 3 + 60 * 2
    assert balance(c2, b) == OPENING_BALANCE + 60 * 3 - 60 * 2


# -- queries ---------------------------------------------------------------


def _day(ts_ms):
    return datetime.datetime.fromtimestamp(ts_ms / 1000, tz=datetime.timezone.utc).date()


def test_sum_transactions(client):
    a = open_verified(client)
    b = open_verified(client)
    s0 = expect_ok(client.call("sum_transactions"))["sum"]
    done = 0
    for amt in (111, 2222, 33):
        expect_ok(client.transfer(a, b, amt))
        done += amt
    expect_ok(client.withdraw(b, 4444))
    done += 4444
    expect_err(client.withdraw(b, AMOUNT_MAX), "insufficient_funds")
    s1 = expect_ok(client.call("sum_transactions"))["sum"]
    assert s1 - s0 == done
    # Against the whole log, overall and per UTC year / month / day.
    evs, _ = client.all_events()
    money = [e for e in evs if e["type"] in ("money_transferred", "money_withdrawn")]
    assert s1 == sum(e["amount"] for e in money)
    today = _day(evs[-1]["ts"])
    by = {
        "year": sum(e["amount"] for e in money if _day(e["ts"]).year == today.year),
        "month": sum(e["amount"] for e in money
                     if (_day(e["ts"]).year, _day(e["ts"]).month) == (today.year, today.month)),
        "day": sum(e["amount"] for e in money if _day(e["ts"]) == today),
    }
    r = expect_ok(client.call("sum_transactions", {"year": today.year}))
    assert r["sum"] == by["year"]
    r = expect_ok(client.call("sum_transactions", {"year": today.year, "month": today.month}))
    assert r["sum"] == by["month"]
    r = expect_ok(client.call("sum_transactions",
                              {"year": today.year, "month": today.month, "day": today.day}))
    assert r["sum"] == by["day"]
    assert by["day"] >= done
    r = expect_ok(client.call("sum_transactions", {"year": 2001}))
    assert r["sum"] == 0
    r = expect_ok(client.call("sum_transactions", {"year": today.year, "month": today.month,
                                                    "day": (today.day % 28) + 1}))
    if (today.day % 28) + 1 != today.day:
        assert r["sum"] == 0


def test_inactive_users(client):
    t0 = expect_ok(client.call("inactive_users"))["total"]
    a = open_verified(client)
    b = open_verified(client)
    t1 = expect_ok(client.call("inactive_users"))["total"]
    assert t1 == t0 + 2
    expect_ok(client.transfer(a, b, 1))
    t2 = expect_ok(client.call("inactive_users"))["total"]
    assert t2 == t1 - 2
    c = open_verified(client)
    expect_ok(client.withdraw(c, 1))
    assert expect_ok(client.call("inactive_users"))["total"] == t2
    assert expect_ok(client.call("inactive_users", {"days": 30}))["total"] == t2
    assert expect_ok(client.call("inactive_users", {"days": 3650}))["total"] == t2
    # From the log: accounts that never moved money (all events are recent).
    evs, _ = client.all_events()
    accounts = {e["account"] for e in evs if e["type"] == "account_opened"}
    active = set()
    for e in evs:
        if e["type"] == "money_transferred":
            active |= {e["from"], e["to"]}
        elif e["type"] == "money_withdrawn":
            active.add(e["account"])
    assert t2 == len(accounts - active)


def test_status(client):
    r = expect_ok(client.status())
    assert r["state"] == "live"
    for f in ("last_seq", "durable_seq", "snapshot_seq", "uptime_ms"):
        assert isinstance(r[f], int) and r[f] >= 0, (f, r)
    assert r["durable_seq"] <= r["last_seq"]
    assert r["snapshot_seq"] <= r["durable_seq"]
    assert r["last_seq"] > 0
    assert isinstance(r["head_hash"], str) and re.fullmatch(r"[0-9a-f]{64}|[0-9a-f]{128}",
                                                             r["head_hash"]), r
    peers = r["peers"]
    assert isinstance(peers, dict)
    for role in ("resolver", "logger", "snapshotter", "mailer"):
        assert role in peers, peers
        assert peers[role]["connected"] is True, peers
    # At rest, everything resolved is durable, and events agree.
    time.sleep(0.1)
    r2 = expect_ok(client.status())
    assert r2["durable_seq"] == r2["last_seq"]
    assert expect_ok(client.events(from_=1, limit=1))["last_seq"] == r2["durable_seq"]
    assert r2["uptime_ms"] >= r["uptime_ms"]


def test_ping_and_unknown_op(client):
    r = expect_ok(client.ping())
    assert set(r) == {"id", "ok"}
    for op in ("nope", "PING", "", "transfer ", "open-account"):
        rid = client.send(op)
        r = client.reply(rid)
        assert r["id"] == rid
        expect_err(r, "unknown_op")


def test_every_error_reply_carries_id_and_message(client):
    v = open_verified(client)
    reqs = [("transfer", {"from": v, "to": v, "amount": 1}),
            ("withdraw", {"account": "abc", "amount": 1}),
            ("withdraw", {"account": v, "amount": 0}),
            ("get_account", {}), ("bogus", {}),
            ("authenticate", {"account": v, "password": "wrongwrong"}),
            ("verify_account", {"account": v, "code": "x"})]
    for op, fields in reqs:
        rid = client.next_id() + 1000
        r = client.call(op, fields, rid=rid)
        assert r["id"] == rid and r["ok"] is False
        assert isinstance(r.get("error"), str)
        assert isinstance(r.get("message"), str) and r["message"]


def test_run_dir_and_socket_modes(group):
    assert stat.S_IMODE(os.stat(group.run).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(group.sock_path).st_mode) == 0o600


# -- events and subscribe --------------------------------------------------


def check_event_shape(e):
    assert isinstance(e["seq"], int) and isinstance(e["ts"], int), e
    assert e["type"] in EVENT_FIELDS, e
    for f, t in EVENT_FIELDS[e["type"]].items():
        assert isinstance(e.get(f), t), (f, e)
    for secret in ("password", "code"):
        assert secret not in e, e
    if "key" in e:
        assert isinstance(e["key"], str) and 1 <= len(e["key"].encode()) <= 64


def test_events_log_matches_acknowledged_commands(client):
    a = open_verified(client)
    b = open_verified(client)
    expect_ok(client.transfer(a, b, 5, key="ev-" + new_password()))
    expect_ok(client.withdraw(b, 6))
    evs, last = client.all_events()
    assert [e["seq"] for e in evs] == list(range(1, len(evs) + 1))
    assert last == len(evs)
    ts = [e["ts"] for e in evs]
    assert ts == sorted(ts)
    now_ms = int(time.time() * 1000)
    assert now_ms - 3600_000 < ts[0] <= ts[-1] <= now_ms + 5000
    for e in evs:
        check_event_shape(e)
    opened = [e["account"] for e in evs if e["type"] == "account_opened"]
    assert len(opened) == len(set(opened))
    for e in evs:
        if e["type"] == "account_opened":
            # the email is sealed (docs/privacy.md): its keyed hash and ciphertext only
            assert e["balance"] == OPENING_BALANCE and "email" not in e
            assert re.fullmatch(r"[0-9a-f]{64}", e["email_hash"]), e
    # Every command the server acknowledged is in the log, as acknowledged.
    assert len(client.group.journal) > 100
    by_seq = {e["seq"]: e for e in evs}
    for seq, op, fields, reply in client.group.journal:
        e = by_seq[seq]
        assert e["type"] == OP_EVENT[op], (op, fields, e)
        if op == "open_account":
            assert e["account"] == reply["account"]
            assert fields["email"].lower().encode() not in e["email_enc"]
        for f in ("account", "from", "to", "amount"):
            if f in fields:
                assert e[f] == fields[f], (f, fields, e)
        if "key" in fields:
            assert e.get("key") == fields["key"], (fields, e)
        else:
            assert "key" not in e, (fields, e)


def test_events_paging(client):
    a = open_verified(client)
    for _ in range(5):
        expect_ok(client.withdraw(a, 1))
    full, last = client.all_events()
    assert len(full) > 100  # the pipelining tests ran before
    r = expect_ok(client.events())
    assert [e["seq"] for e in r["events"]] == list(range(1, 101))
    assert r["last_seq"] == last
    r = expect_ok(client.events(limit=10 ** 9))
    assert r["events"] == full[:10000]
    paged, nxt = [], 1
    while nxt <= last:
        r = expect_ok(client.events(from_=nxt, limit=7))
        assert 1 <= len(r["events"]) <= 7
        assert r["events"][0]["seq"] == nxt
        paged += r["events"]
        nxt = r["events"][-1]["seq"] + 1
    assert paged == full
    r = expect_ok(client.events(from_=last - 2, limit=100))
    assert [e["seq"] for e in r["events"]] == [last - 2, last - 1, last]
    r = expect_ok(client.events(from_=last + 1))
    assert r["events"] == [] and r["last_seq"] == last
    r = expect_ok(client.events(from_=last + 1000))
    assert r["events"] == []


def test_subscribe_old_then_live(group):
    c = group.client()
    sub = group.client()
    a = open_verified(c)
    b = open_verified(c)
    full, last = c.all_events()
    sid = sub.subscribe(from_=1)
    first = None
    while first is None:
        sub._pump(0.5)
        if sub.frames:
            first = sub.frames[0]
    assert first.get("ok") is True and first.get("id") == sid and "event" not in first, \
        "the first frame of a subscription must be its ok reply: %r" % (first,)
    expect_ok(sub.reply(sid))
    got = [sub.next_event(sid) for _ in range(last)]
    assert got == full
    r = expect_ok(c.transfer(a, b, 77))
    live = sub.next_event(sid)
    assert live["seq"] == r["seq"] == last + 1
    assert (live["type"], live["from"], live["to"], live["amount"]) == \
        ("money_transferred", a, b, 77)
    r2 = expect_ok(c.withdraw(b, 3))
    live2 = sub.next_event(sid)
    assert live2["seq"] == r2["seq"] and live2["type"] == "money_withdrawn"
    for f in sub.frames:
        assert f["id"] == sid


def test_subscribe_default_from_is_next_event(group):
    c = group.client()
    sub = group.client()
    a = open_verified(c)
    sid = sub.subscribe()
    expect_ok(sub.reply(sid))
    time.sleep(0.2)
    sub._pump(0.1)
    assert sub.pending_events(sid) == 0
    r = expect_ok(c.withdraw(a, 9))
    ev = sub.next_event(sid)
    assert ev["seq"] == r["seq"] and ev["account"] == a and ev["amount"] == 9


def test_subscribe_from_middle(group):
    c = group.client()
    full, last = c.all_events()
    sub = group.client()
    start = max(1, last - 4)
    sid = sub.subscribe(from_=start)
    expect_ok(sub.reply(sid))
    got = [sub.next_event(sid) for _ in range(last - start + 1)]
    assert got == full[start - 1:]


# -- invariants (run last) -------------------------------------------------


def test_money_invariant_and_replay(client):
    evs, _ = client.all_events()
    bal, verified, withdrawn = {}, {}, 0
    for e in evs:
        t = e["type"]
        if t == "account_opened":
            bal[e["account"]] = e["balance"]
            verified[e["account"]] = False
        elif t == "account_verified":
            verified[e["account"]] = True
        elif t == "money_transferred":
            bal[e["from"]] -= e["amount"]
            bal[e["to"]] += e["amount"]
            assert bal[e["from"]] >= 0
        elif t == "money_withdrawn":
            bal[e["account"]] -= e["amount"]
            withdrawn += e["amount"]
            assert bal[e["account"]] >= 0
    total = 0
    for acct in bal:
        r = expect_ok(client.get_account(acct))
        assert r["balance"] == bal[acct], acct
        assert r["verified"] is verified[acct], acct
        total += r["balance"]
    assert total == OPENING_BALANCE * len(bal) - withdrawn


def test_no_secrets_on_disk_or_in_events(group):
    c = group.client()
    evs, _ = c.all_events()
    assert group.passwords and group.codes
    data = group.data
    logs = [p for p in data.rglob("*") if p.is_file() and p.name.startswith("events")]
    assert logs, "no events log under %s" % data
    not_mail = [p for p in data.rglob("*") if p.is_file() and "mail" not in p.relative_to(data).parts]
    blobs = {}
    for p in data.rglob("*"):
        try:
            blobs[p] = p.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            pass  # a queue file the mailer delivered and removed meanwhile
    everything = list(blobs)
    not_mail = [p for p in not_mail if p in blobs]
    ev_text = repr(evs).encode()
    for pw in group.passwords:
        b = pw.encode()
        assert b not in ev_text
        for p in everything:
            assert b not in blobs[p], "password in %s" % p
        assert b not in group.log_text().encode(), "password in esbankd output"
    for code in group.codes:
        b = code.encode()
        assert b not in ev_text
        for p in not_mail:
            assert b not in blobs[p], "verification code in %s" % p


# -- concurrency ------------------------------------------------------------


def test_same_email_pipelined_only_one_wins(client):
    addr = new_email("race")
    pws = [new_password() for _ in range(4)]
    client.group.passwords.update(pws)
    variants = [addr, addr.upper(), addr, addr.capitalize()]
    rids = [client.send("open_account", {"email": e, "password": p})
            for e, p in zip(variants, pws)]
    replies = [client.reply(r, timeout=30) for r in rids]
    oks = [r for r in replies if r.get("ok")]
    assert len(oks) == 1, replies
    for r in replies:
        if not r.get("ok"):
            expect_err(r, "already_exists")
    evs, _ = client.all_events()
    # the email is sealed in the log: one event with the winner's email hash, and it is addr
    opened = [e for e in evs if e["type"] == "account_opened" and e["account"] == oks[0]["account"]]
    assert len(opened) == 1
    assert len([e for e in evs if e.get("email_hash") == opened[0]["email_hash"]]) == 1
    assert expect_ok(client.get_account(oks[0]["account"]))["email"] == addr.lower()


def test_concurrent_clients_serialize(group):
    setup = group.client(timeout=30)
    accts = [open_verified(setup) for _ in range(5)]
    rng = random.Random(7)
    clients = [group.client(timeout=30) for _ in range(6)]
    sent = []  # (client, rid, fields)
    for _ in range(60):
        for c in clients:
            frm, to = rng.sample(accts, 2)
            fields = {"from": frm, "to": to, "amount": rng.randint(1, 60000)}
            sent.append((c, c.send("transfer", fields), fields))
    replies = [(fields, c.reply(rid, timeout=30)) for c, rid, fields in sent]
    evs, _ = setup.all_events()
    by_seq = {e["seq"]: e for e in evs}
    # Replaying the log in seq order reproduces every reply's balance, and a
    # transfer was refused only when the balance really was too low.
    ok_by_seq = {r["seq"]: (f, r) for f, r in replies if r.get("ok")}
    refused = [(f, r) for f, r in replies if not r.get("ok")]
    for f, r in refused:
        expect_err(r, "insufficient_funds")
    assert ok_by_seq and refused
    bal = {}
    for e in evs:
        if e["type"] == "account_opened":
            bal[e["account"]] = e["balance"]
        elif e["type"] == "money_transferred":
            bal[e["from"]] -= e["amount"]
            bal[e["to"]] += e["amount"]
            assert bal[e["from"]] >= 0
        elif e["type"] == "money_withdrawn":
            bal[e["account"]] -= e["amount"]
        if e["seq"] in ok_by_seq:
            f, r = ok_by_seq[e["seq"]]
            assert (e["from"], e["to"], e["amount"]) == (f["from"], f["to"], f["amount"])
            assert r["balance"] == bal[f["from"]]
    assert set(ok_by_seq) <= set(by_seq)
    for a in accts:
        assert expect_ok(setup.get_account(a))["balance"] == bal[a]
    assert sum(bal[a] for a in accts) == 5 * OPENING_BALANCE


# -- a log bigger than one frame (runs last: it adds thousands of events) ---


def test_events_reply_never_exceeds_one_frame(client):
    a = open_verified(client)
    b = open_verified(client)
    pad = new_password()[:8]
    n = 9000
    window = 500
    for start in range(0, n, window):
        rids = [client.send("transfer", {"from": a if i % 2 else b, "to": b if i % 2 else a,
                                         "amount": 1, "key": ("%s-%06d-" % (pad, i)).ljust(64, "z")})
                for i in range(start, min(n, start + window))]
        for rid in rids:
            expect_ok(client.reply(rid, timeout=30))
    # 9000+ events of ~200 bytes do not fit in 1 MiB: the reply is cut short
    # (the client library rejects a frame above 1 MiB), and paging goes on.
    r = expect_ok(client.events(from_=1, limit=10000))
    last = r["last_seq"]
    assert last > 9000
    got = r["events"]
    assert 0 < len(got) < last
    assert [e["seq"] for e in got] == list(range(1, len(got) + 1))
    full, last2 = client.all_events(page=10000)
    assert last2 == last and [e["seq"] for e in full] == list(range(1, last + 1))
