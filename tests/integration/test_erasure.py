"""Erasure by crypto-shredding (issue 16, item 1; docs/privacy.md).

An account's email is in the log only sealed with the account's own key
(DATA/keys); erase_account destroys the key. After it, no file under the data
directory (but the Maildir outbox: mail already sent), no snapshot, backup or
export holds the email in any encoding; the audit passes and a replay equals
the live state. The rules of the op (balance_not_zero, already_erased, force,
dry runs), the email free again, no mail for an erased account, keys that
survive a kill -9 right after open_account's ok, and logs written before
sealing (plain emails) all stay usable.
"""

import base64
import json
import subprocess
import sys
from pathlib import Path

import msgpack

from conftest import expect_err, expect_ok, new_password, open_account, open_verified, wait_for
from test_backup import esbank

GENLOG = Path(__file__).resolve().parents[2] / "scripts" / "bench.d" / "genlog.py"


def unique_email(tag):
    return "Erase.%s-%s@Example.ORG" % (tag, new_password()[-10:])


def encodings(email):
    """The email as bytes in every encoding a file could hold it in."""
    out = set()
    for form in {email, email.lower(), email.upper()}:
        b = form.encode()
        out |= {b, b.hex().encode(), b.hex().upper().encode(), msgpack.packb(form),
                form.encode("utf-16-le"), json.dumps(form).encode()}
        for enc in (base64.b64encode, base64.urlsafe_b64encode):
            out.add(enc(b).rstrip(b"="))
    return out


def assert_nowhere(email, *roots):
    """No file under roots (but a Maildir outbox: mail already sent) holds email."""
    forms = encodings(email)
    seen = 0
    for root in roots:
        for p in Path(root).rglob("*"):
            if not p.is_file() or "outbox" in p.parts:
                continue
            data = p.read_bytes()
            seen += 1
            for f in forms:
                assert f not in data, "%s holds %r" % (p, f)
    assert seen > 0


def live_account(c, acct):
    r = expect_ok(c.get_account(acct))
    r.pop("id")
    r.pop("ok")
    return r


def test_erase_leaves_no_plaintext_anywhere(fresh_group, tmp_path):
    g = fresh_group("--snapshot-every", "3")
    c = g.client()
    email = unique_email("gone")
    a = open_verified(c, email)
    assert live_account(c, a)["email"] == email.lower()
    expect_err(c.call("erase_account", {"account": a}), "balance_not_zero")
    w = expect_ok(c.withdraw(a, 100000))
    g.wait_mail(lambda m: ".esbank-%d." % w["seq"] in m[0].name, what="withdrawal notice")
    expect_err(c.call("erase_account", {"account": a, "force": "yes"}), "bad_request")
    expect_err(c.call("erase_account", {"account": "1234567890123456"}), "not_found")
    dry = expect_ok(c.call("erase_account", {"account": a, "dry_run": True}))
    assert dry["dry_run"] is True and live_account(c, a)["email"] == email.lower()
    r = expect_ok(c.call("erase_account", {"account": a}))
    assert r["seq"] == dry["seq"]
    after = live_account(c, a)
    assert after["erased"] is True and "email" not in after and after["balance"] == 0
    expect_err(c.call("erase_account", {"account": a}), "already_erased")
    expect_err(c.call("erase_account", {"account": a, "force": True}), "already_erased")
    others = [open_verified(c) for _ in range(2)]  # more events: a snapshot after the erasure
    wait_for(lambda: c.status().get("snapshot_seq", 0) > r["seq"], what="a snapshot")
    live = {x: live_account(c, x) for x in [a] + others}

    backup = tmp_path / "backup"
    esbank("backup", "--data", g.data, "--to", backup)
    exports = tmp_path / "exports"
    exports.mkdir()
    for what in ("events", "accounts"):
        for fmt in ("jsonl", "csv"):
            out = esbank("export", what, "--data", g.data, "--format", fmt,
                         "--with-secrets").stdout
            (exports / ("%s.%s" % (what, fmt))).write_text(out)
    log_json = esbank("--json", "log", "--run", g.run).stdout
    (exports / "log.jsonl").write_text(log_json)
    accounts = [json.loads(x) for x in (exports / "accounts.jsonl").read_text().splitlines()]
    by_number = {x["number"]: x for x in accounts}
    assert "email" not in by_number[a] and by_number[others[0]]["email"] == live[others[0]]["email"]

    assert esbank("audit", "--data", g.data).returncode == 0
    replayed = json.loads(esbank("--json", "replay", "--data", g.data).stdout)
    for acct in replayed["accounts"]:
        want = live[acct["account"]]
        assert acct == {k: want[k] for k in acct}, (acct, want)
        assert set(acct) == set(want), (acct, want)
    c.close()
    g.stop()
    assert_nowhere(email, g.data, backup, exports)
    assert list((g.data / "snapshots").glob("*.snap"))


def test_email_free_again_and_no_mail_for_an_erased_account(group, client):
    email = unique_email("again")
    a = open_verified(client, email)
    b = open_verified(client)
    expect_err(client.open_account(email.upper(), new_password()), "already_exists")
    expect_ok(client.call("erase_account", {"account": a, "force": True}))
    # the money stays and moves; no notice is mailed to the erased account
    w = expect_ok(client.withdraw(a, 500))
    t = expect_ok(client.transfer(b, a, 700))
    w2 = expect_ok(client.withdraw(b, 100))  # b's notice comes after a's would have
    group.wait_mail(lambda m: ".esbank-%d." % w2["seq"] in m[0].name, what="b's notice")
    names = [m[0].name for m in group.mails()]
    assert not [n for n in names if ".esbank-%d." % w["seq"] in n], names
    assert live_account(client, a)["balance"] == 100000 - 500 + 700 and t["seq"] > w["seq"]
    # the email opens a new account, which gets its mail
    c2 = open_verified(client, email.lower())
    assert live_account(client, c2)["email"] == email.lower()
    assert "email" not in live_account(client, a)
    # esbank erase on the command line
    p = esbank("erase", c2, "--run", group.run, check=False)
    assert p.returncode == 100 and "balance" in p.stderr, p.stderr
    p = esbank("--json", "erase", c2, "--force", "--run", group.run)
    assert json.loads(p.stdout)["ok"] is True
    shown = esbank("show", c2, "--run", group.run).stdout
    assert "(erased)" in shown and email.lower() not in shown


def test_kill9_right_after_open_keeps_every_key(fresh_group):
    g = fresh_group()
    c = g.client()
    emails = [unique_email("k%d" % i) for i in range(4)]
    accts = [open_account(c, e) for e in emails]
    g.kill9()  # the logger and the resolver die right after the last ok
    g.start()
    c = g.client()
    for acct, email in zip(accts, emails):
        assert live_account(c, acct)["email"] == email.lower()
    assert esbank("audit", "--data", g.data).returncode == 0


def test_old_plaintext_log_still_replays_and_erases(tmp_path):
    """A log written before sealing (plain "email" in account_opened) is read as before."""
    from conftest import Group
    g = Group(tmp_path / "old")
    g.data.mkdir(parents=True)
    subprocess.run([sys.executable, str(GENLOG), "--plain", str(g.data), "3"], check=True,
                   capture_output=True)
    g.start()
    try:
        c = g.client()
        evs, _ = c.all_events()
        old = [e["account"] for e in evs]
        assert [e["email"] for e in evs] == ["bench-genlog-%d@bench.example" % i for i in range(3)]
        assert live_account(c, old[1])["email"] == "bench-genlog-1@bench.example"
        expect_err(c.open_account("Bench-Genlog-1@bench.example", new_password()),
                   "already_exists")
        expect_ok(c.call("erase_account", {"account": old[0], "force": True}))
        assert live_account(c, old[0])["erased"] is True
        fresh = open_account(c, "bench-genlog-0@bench.example")  # released
        assert live_account(c, fresh)["email"] == "bench-genlog-0@bench.example"
        out = esbank("export", "accounts", "--data", g.data).stdout
        rows = {json.loads(x)["number"]: json.loads(x) for x in out.splitlines()}
        assert "email" not in rows[old[0]] and rows[old[1]]["email"].startswith("bench-genlog-1")
        assert esbank("audit", "--data", g.data).returncode == 0
        c.close()
        g.stop()
        g.start()  # replayed from the log: the same answers
        c = g.client()
        assert live_account(c, old[0])["erased"] is True
        assert live_account(c, fresh)["email"] == "bench-genlog-0@bench.example"
    finally:
        g.cleanup()
