"""esbank backup, restore and export (issue 14, item 8).

A bank with a snapshot every 10 events is backed up while a client keeps
transferring; the backup is restored into a new data directory, where a
replay (head hash, accounts, balances) equals the source's replay at the
backup's last seq, and a group started on it reports that head hash. Restore
refuses a data directory a group runs on, and one that holds a bank without
--force. Export prints events and accounts as JSON lines and CSV, without
password and code hashes unless --with-secrets.
"""

import csv
import io
import json
import subprocess
import threading
import time

import pytest

from conftest import Group, build_dir, expect_ok, open_account, open_verified

EXIT_PERMANENT = 100
EXIT_TEMPORARY = 111


def esbank(*args, check=True):
    exe = build_dir() / "client" / "esbank"
    p = subprocess.run([str(exe)] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=120)
    if check and p.returncode != 0:
        raise AssertionError("esbank %s exited %d:\n%s%s" % (" ".join(map(str, args)),
                                                             p.returncode, p.stdout, p.stderr))
    return p


def esbank_json(*args):
    return json.loads(esbank("--json", *args).stdout)


def replay(data, until=None):
    r = esbank_json("replay", "--data", data, *(["--until", until] if until else []))
    r.pop("snapshot_seq", None)
    r.pop("events_replayed", None)
    return r


class Load:
    """Transfers back and forth on a client of its own until stopped."""

    def __init__(self, group, a, b):
        self.client = group.client()
        self.a, self.b = a, b
        self.done = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            frm, to = (self.a, self.b) if self.done % 2 == 0 else (self.b, self.a)
            expect_ok(self.client.transfer(frm, to, 1))
            self.done += 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=30)
        self.client.close()


@pytest.fixture
def bank(fresh_group):
    g = fresh_group("--snapshot-every", "10")
    c = g.client()
    accounts = [open_verified(c) for _ in range(2)]
    yield g, accounts
    c.close()


def test_backup_under_load_restores_the_same_state(bank, tmp_path):
    g, (a, b) = bank
    dest = tmp_path / "backup"
    with Load(g, a, b) as load:
        while load.done < 30:
            time.sleep(0.02)
        made = esbank_json("backup", "--data", g.data, "--to", dest)
        before = load.done
        while load.done < before + 20:  # the bank went on after the backup
            time.sleep(0.02)
    k = made["last_seq"]
    assert k >= 30 and made["snapshot"] > 0 and made["mails"] >= 0, made
    assert (dest / "backup.json").exists() and (dest / "mail" / "addresses").exists()
    assert not list(tmp_path.glob("backup.partial-*"))

    restored = tmp_path / "restored"
    r = esbank_json("restore", "--from", dest, "--data", restored)
    assert r["last_seq"] == k and r["head_hash"] == made["head_hash"], (r, made)
    want = replay(g.data, until=k)
    assert want["head_hash"] == made["head_hash"]
    assert replay(restored) == want

    g.stop()
    g2 = Group(tmp_path / "g2")
    g2.data = restored
    try:
        g2.start()
        st = expect_ok(g2.client().status())
        assert st.get("head_hash") in (None, made["head_hash"]), st
        assert replay(restored) == want
    finally:
        g2.cleanup()


def test_backup_refuses_an_existing_dest_and_a_missing_log(tmp_path):
    (tmp_path / "dest").mkdir()
    (tmp_path / "data").mkdir()
    p = esbank("backup", "--data", tmp_path / "data", "--to", tmp_path / "dest", check=False)
    assert p.returncode == EXIT_PERMANENT and "exists" in p.stderr, p.stderr
    p = esbank("backup", "--data", tmp_path / "data", "--to", tmp_path / "new", check=False)
    assert p.returncode == EXIT_PERMANENT and "events.log" in p.stderr, p.stderr
    assert not (tmp_path / "new").exists() and not list(tmp_path.glob("new.partial-*"))


def test_restore_refuses_a_live_data_dir_and_a_bank_without_force(bank, tmp_path):
    g, _ = bank
    dest = tmp_path / "backup"
    esbank("backup", "--data", g.data, "--to", dest)
    p = esbank("restore", "--from", dest, "--data", g.data, check=False)
    assert p.returncode == EXIT_TEMPORARY and "running" in p.stderr, p.stderr
    g.stop()
    p = esbank("restore", "--from", dest, "--data", g.data, check=False)
    assert p.returncode == EXIT_PERMANENT and "--force" in p.stderr, p.stderr
    esbank("restore", "--from", dest, "--data", g.data, "--force")
    aside = list(g.data.glob("before-restore-*"))
    assert len(aside) == 1 and (aside[0] / "events.log").exists()


def test_export_events_and_accounts_without_secrets(bank):
    g, (a, b) = bank
    expect_ok(g.client().transfer(a, b, 250))
    lines = esbank("export", "events", "--data", g.data).stdout.splitlines()
    events = [json.loads(x) for x in lines]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "money_transferred" and events[-1]["amount"] == 250
    assert events[-1]["from"] == a and events[-1]["to"] == b
    assert events[0]["ts"].endswith("Z") and "T" in events[0]["ts"]
    assert not any("pwhash" in e or "code_hash" in e for e in events)
    secret = [json.loads(x) for x in
              esbank("export", "events", "--data", g.data, "--with-secrets").stdout.splitlines()]
    assert secret[0]["pwhash"].startswith("$argon2id$") and len(secret[0]["code_hash"]) == 64

    text = esbank("export", "accounts", "--data", g.data, "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert set(rows[0]) == {"number", "email", "verified", "balance", "opened_at",
                            "last_activity"}
    by = {r["number"]: r for r in rows}
    assert int(by[a]["balance"]) + int(by[b]["balance"]) == 200000
    assert by[a]["verified"] == "true"
    assert "pwhash" in esbank("export", "accounts", "--data", g.data, "--format", "csv",
                              "--with-secrets").stdout.splitlines()[0]
    p = esbank("export", "accounts", "--data", g.data, "--format", "xml", check=False)
    assert p.returncode == EXIT_PERMANENT


def test_csv_export_is_safe_to_open_in_a_spreadsheet(bank):
    """An email is the user's own text: one that starts like a formula
    (=, +, -, @) is written with a leading ' in CSV, so a spreadsheet shows
    it instead of running it; JSON keeps it exact."""
    g, _ = bank
    hostile = "=hyperlink(1)@example.com"
    acct = open_account(g.client(), hostile)
    text = esbank("export", "accounts", "--data", g.data, "--format", "csv").stdout
    by = {r["number"]: r for r in csv.DictReader(io.StringIO(text))}
    assert by[acct]["email"] == "'" + hostile, by[acct]
    assert not any(c.startswith(("=", "+", "-", "@")) for r in by.values() for c in r.values())
    lines = esbank("export", "accounts", "--data", g.data).stdout.splitlines()
    assert {json.loads(x)["number"]: json.loads(x) for x in lines}[acct]["email"] == hostile
