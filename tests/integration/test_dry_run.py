"""Dry runs (issue 16, item 3): a command with "dry_run": true is checked
and answered against the live state, and nothing happens.

test_every_command_dry_then_real: for each command type (open_account,
verify_account, reissue_code, transfer, withdraw), successes and errors, a
dry run leaves the head hash, last seq, the accounts and the outbox as they
were, and answers what the real command sent right after answers, with
"dry_run": true added (open_account's account number aside: a fresh one is
drawn each time).

test_keys: a dry run with a new key does not use it up (the real command
with it is new, not a duplicate); with a used key it answers the original
reply (dry_run true) or key_conflict, like the real command; a keyed
open_account retry checks the password as the real one does.

test_bad_dry_run: dry_run that is not a boolean (1, "yes", nil) is
bad_request; "transfers" with dry_run is bad_request; nothing applied.

test_cli_dry_run: `esbank transfer --dry-run` and `esbank withdraw --dry-run`
print the would-be reply as JSON with "dry_run": true and change nothing;
a refused dry run exits 100; --dry-run with --file is a usage error.
"""

import json
import subprocess
import time

from conftest import build_dir, expect_err, expect_ok, new_email, new_password, open_verified

MAIL_SETTLE_S = 0.3


def state(c, accounts):
    s = expect_ok(c.status())
    accts = [expect_ok(c.get_account(a)) if a else None for a in accounts]
    for a in accts:
        if a:
            a.pop("id", None)
    return s["last_seq"], s["head_hash"], accts


def dry(c, op, fields):
    return c.call(op, dict(fields, dry_run=True))


def same_answer(d, r, ignore=("id", "message")):
    assert d.get("dry_run") is True, d
    assert "dry_run" not in r, r
    dd = {k: v for k, v in d.items() if k not in ignore and k != "dry_run"}
    rr = {k: v for k, v in r.items() if k not in ignore}
    assert dd == rr, (d, r)


def mails_for(g, acct):
    return [m for m in g.mails() if acct in m[2]]


def check(g, c, op, fields, watch, ignore=("id", "message")):
    """Dry run op: nothing changes; then the real one answers the same."""
    before = state(c, watch)
    d = dry(c, op, fields)
    assert state(c, watch) == before, (op, fields, d)
    r = c.call(op, fields)
    same_answer(d, r, ignore)
    return d, r


def test_every_command_dry_then_real(group):
    g, c = group, group.client()
    a = open_verified(c)
    b = open_verified(c)
    # open_account: ok (a new number each draw), already_exists, bad email rules
    email = new_email("dry")
    d, r = check(g, c, "open_account", {"email": email, "password": new_password()}, [],
                 ignore=("id", "message", "account"))
    assert d["account"] != r["account"] and len(d["account"]) == 16, (d, r)
    new = r["account"]
    check(g, c, "open_account", {"email": email, "password": new_password()}, [])
    # reissue_code (the dry run mails nothing), on the unverified account
    first = g.wait_code(new)
    d, r = check(g, c, "reissue_code", {"account": new}, [new])
    expect_ok(r)
    code = g.wait_code(new, exclude={first})
    time.sleep(MAIL_SETTLE_S)
    assert len(g.codes_for(new)) == 2, "a dry run mailed a code"
    check(g, c, "reissue_code", {"account": a}, [a])  # already verified
    # verify_account: wrong code, then the right one
    check(g, c, "verify_account", {"account": new, "code": "nope"}, [new])
    check(g, c, "verify_account", {"account": new, "code": code}, [new])
    check(g, c, "verify_account", {"account": "9999999999999999", "code": code}, [])
    # transfer: ok, insufficient_funds, same_account, invalid_amount, not_found
    bal = expect_ok(c.get_account(a))["balance"]
    check(g, c, "transfer", {"from": a, "to": b, "amount": 7}, [a, b])
    check(g, c, "transfer", {"from": a, "to": b, "amount": bal * 10 + 1}, [a, b])
    check(g, c, "transfer", {"from": a, "to": a, "amount": 1}, [a])
    check(g, c, "transfer", {"from": a, "to": b, "amount": 0}, [a, b])
    check(g, c, "transfer", {"from": a, "to": "9999999999999999", "amount": 1}, [a])
    # withdraw: ok (mails a notice: the dry run mails none), insufficient_funds
    n_mail = len(mails_for(g, b))
    check(g, c, "withdraw", {"account": b, "amount": 3}, [b])
    g.wait_mail(lambda m: len(mails_for(g, b)) >= n_mail + 1, what="withdrawal notice")
    time.sleep(MAIL_SETTLE_S)
    assert len(mails_for(g, b)) == n_mail + 1, "a dry run mailed"
    check(g, c, "withdraw", {"account": b, "amount": 10 ** 12}, [b])
    c.close()


def test_keys(group):
    g, c = group, group.client()
    a = open_verified(c)
    b = open_verified(c)
    before = state(c, [a, b])
    d = expect_ok(dry(c, "transfer", {"from": a, "to": b, "amount": 5, "key": "dk-1"}))
    assert state(c, [a, b]) == before
    r = expect_ok(c.transfer(a, b, 5, key="dk-1"))
    assert r["seq"] == d["seq"] == before[0] + 1 and r["balance"] == d["balance"], (d, r)
    after = state(c, [a, b])
    d2 = expect_ok(dry(c, "transfer", {"from": a, "to": b, "amount": 5, "key": "dk-1"}))
    assert d2["seq"] == r["seq"] and d2["balance"] == r["balance"] and d2["dry_run"] is True
    d3 = expect_err(dry(c, "transfer", {"from": a, "to": b, "amount": 6, "key": "dk-1"}),
                    "key_conflict")
    assert d3["dry_run"] is True
    assert state(c, [a, b]) == after
    # a keyed open_account retry: the password is compared, as for the real one
    email, pw = new_email("dryk"), new_password()
    g.passwords.add(pw)
    o = expect_ok(c.open_account(email, pw, key="dk-open"))
    s = state(c, [])
    d4 = expect_ok(dry(c, "open_account", {"email": email, "password": pw, "key": "dk-open"}))
    assert d4["account"] == o["account"] and d4["seq"] == o["seq"], (o, d4)
    expect_err(dry(c, "open_account", {"email": email, "password": pw + "x",
                                        "key": "dk-open"}), "key_conflict")
    assert state(c, []) == s
    c.close()


def test_bad_dry_run(group):
    c = group.client()
    a = open_verified(c)
    b = open_verified(c)
    before = state(c, [a, b])
    for v in (1, "yes", None, [True]):
        expect_err(c.call("transfer", {"from": a, "to": b, "amount": 1, "dry_run": v}),
                   "bad_request")
    r = expect_err(c.call("transfers", {"transfers": [{"from": a, "to": b, "amount": 1}],
                                        "dry_run": True}), "bad_request")
    assert "dry_run" in r["message"]
    ok = expect_ok(c.call("transfer", {"from": a, "to": b, "amount": 1, "dry_run": False}))
    assert "dry_run" not in ok
    assert state(c, [a, b])[0] == before[0] + 1
    c.close()


def cli(group, *args):
    argv = [str(build_dir() / "client" / "esbank"), "--run", str(group.run)] + list(args)
    return subprocess.run(argv, capture_output=True, text=True, timeout=20)


def test_cli_dry_run(group):
    c = group.client()
    a = open_verified(c)
    b = open_verified(c)
    before = state(c, [a, b])
    p = cli(group, "transfer", a, b, "1.25", "--dry-run")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["dry_run"] is True and out["seq"] == before[0] + 1, out
    assert out["balance"] == before[2][0]["balance"] - 125, out
    p = cli(group, "withdraw", a, "--dry-run", str(10 ** 9))
    assert p.returncode == 100, (p.stdout, p.stderr)
    p = cli(group, "transfer", "--dry-run", "--file", "/dev/null")
    assert p.returncode == 100, (p.stdout, p.stderr)
    assert state(c, [a, b]) == before
    c.close()
