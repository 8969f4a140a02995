"""The offline history tools: esbank replay, audit and whatif (issue 6).

A history is built through the running server (esbankd --snapshot-every 10),
recording after every acknowledged command the state the server reported
(get_account of every account); the group is stopped and the tools are run
against its data directory:
  - replay at every tenth sequence number equals the recorded state;
  - audit passes and prints the head hash the server reported in status;
  - audit fails, naming the right seq and byte offset, after one byte of the
    log is changed (many positions: header, length, seq, body, hash, last
    record), after a record is removed, and after a snapshot is altered
    (a flipped byte, and a re-checksummed change of a balance);
  - whatif with an injected large withdrawal names the later transfers that
    would have bounced;
  - whatif with one injected command of every op re-checks later real events
    of every type with the outcome each must have (issue 11, item 14).
"""

import hashlib
import json
import os
import shutil
import struct
import subprocess
import time

import msgpack
import pytest

from conftest import build_dir, expect_err, expect_ok, open_verified

LOG_HEADER = 8
REC_OVERHEAD = 44
SNAP_HEADER = 88
SNAP_SUMMED = 56
SNAPSHOT_WAIT_S = 10.0
EXIT_PERMANENT = 100


def esbank(*args, check=True):
    exe = build_dir() / "client" / "esbank"
    if not exe.exists():
        pytest.fail("esbank not built: %s" % exe)
    p = subprocess.run([str(exe)] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=120)
    if check and p.returncode != 0:
        raise AssertionError("esbank %s exited %d:\n%s%s" % (" ".join(map(str, args)),
                                                             p.returncode, p.stdout, p.stderr))
    return p


def esbank_json(*args):
    p = esbank("--json", *args)
    return json.loads(p.stdout)


def records(data):
    """[(seq, offset, length)] of every record of data/events.log."""
    from crashkit import log_records  # knows both versions of the format
    return [(seq, off, size) for off, size, seq in log_records(data / "events.log")]


def snapshots(data):
    d = data / "snapshots"
    if not d.is_dir():
        return []
    return sorted(int(p.name[:20]) for p in d.iterdir() if p.name.endswith(".snap"))


# -- the history, built once for the module ---------------------------------------


class History:
    def __init__(self):
        self.accounts = []
        self.states = {}      # seq -> {account: get_account reply}
        self.head_hash = None
        self.last_seq = None
        self.a_transfers = []  # seqs of the transfers out of accounts[0] late in history
        self.whatif_at = None
        self.data = None


def _record_state(c, h, seq):
    state = {}
    for a in h.accounts:
        r = expect_ok(c.get_account(a))
        state[a] = r
    h.states[seq] = state


def _command(c, h, reply):
    if reply.get("ok") is True:
        _record_state(c, h, reply["seq"])
    return reply


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    from conftest import _drop_group, _make_group
    g = _make_group(tmp_path_factory.mktemp("hist"), ("--snapshot-every", "10"))
    g.start()
    h = History()
    try:
        c = g.client()
        for _ in range(5):
            h.accounts.append(open_verified(c))
            seq = c.status()["last_seq"]
            _record_state(c, h, seq)
        a, b, x, y, z = h.accounts
        for i in range(40):
            frm, to = h.accounts[(i * 3 + 1) % 5], h.accounts[(i * 7 + 2) % 5]
            if frm == to or frm == a:
                to = h.accounts[(h.accounts.index(frm) + 1) % 5]
            if frm == a:
                frm = b
            _command(c, h, c.transfer(frm, to, 100 + 37 * i))
            if i % 9 == 4:
                _command(c, h, c.withdraw(x, 250 + i))
        expect_err(c.withdraw(y, 10 ** 9), "insufficient_funds")
        h.whatif_at = c.status()["last_seq"]
        _record_state(c, h, h.whatif_at)
        for i in range(3):
            r = _command(c, h, c.transfer(a, z, 30000))
            h.a_transfers.append(r["seq"])
            _command(c, h, c.transfer(y, x, 500 + i))
        st = expect_ok(c.status())
        h.last_seq, h.head_hash = st["last_seq"], st["head_hash"]
        h.events, _ = c.all_events()
        # esbank --json log prints a bin (a sealed email_enc) as hex
        h.events = [{k: v.hex() if isinstance(v, bytes) else v for k, v in e.items()}
                    for e in h.events]
        mid_ts = h.events[len(h.events) // 2]["ts"]
        h.logs = {name: [json.loads(x) for x in esbank("--json", "log", "--run", g.run,
                                                       *args).stdout.splitlines()]
                  for name, args in [("withdrawn", ("--type", "money_withdrawn")),
                                     ("a", ("--account", a)),
                                     ("since", ("--since", mid_ts)),
                                     ("until", ("--until", mid_ts, "--type",
                                                "money_transferred"))]}
        h.mid_ts = mid_ts
        # Snapshots are written by the snapshotter after events are durable.
        deadline = time.monotonic() + SNAPSHOT_WAIT_S
        while time.monotonic() < deadline and not snapshots(g.data):
            time.sleep(0.1)
        g.stop()
        h.data = g.data
        yield h
    finally:
        _drop_group(g)


@pytest.fixture
def copy(history, tmp_path):
    """A private copy of the data directory to damage."""
    d = tmp_path / "data"
    shutil.copytree(history.data, d, ignore=shutil.ignore_patterns("mail"))
    return d


# -- log filters (run while the server ran) -------------------------------------------


def test_log_filters(history):
    evs, a = history.events, history.accounts[0]
    assert history.logs["withdrawn"] == [e for e in evs if e["type"] == "money_withdrawn"]
    assert history.logs["a"] == [e for e in evs if a in (e.get("account"), e.get("from"),
                                                          e.get("to"))]
    assert history.logs["since"] == [e for e in evs if e["ts"] >= history.mid_ts]
    assert history.logs["until"] == [e for e in evs if e["ts"] <= history.mid_ts and
                                     e["type"] == "money_transferred"]
    assert history.logs["withdrawn"] and history.logs["a"] and history.logs["until"]


# -- replay --------------------------------------------------------------------------


def test_replay_every_tenth_seq_equals_the_server(history):
    checked = 0
    for seq in sorted(history.states):
        if seq % 10:
            continue
        out = esbank_json("replay", "--data", history.data, "--until", seq)
        assert out["seq"] == seq
        got = {acc["account"]: acc for acc in out["accounts"]}
        for num, reply in history.states[seq].items():
            for field in ("account", "email", "balance", "verified", "opened_at",
                          "last_activity"):
                assert got[num][field] == reply[field], (seq, num, field, got[num], reply)
        checked += 1
    assert checked >= 5


def test_replay_end_matches_head_and_account_filter(history):
    out = esbank_json("replay", "--data", history.data)
    assert out["seq"] == history.last_seq
    assert out["head_hash"] == history.head_hash
    assert out["totals"]["balance"] == 100000 * 5 - out["totals"]["withdrawn"]
    a = history.accounts[0]
    one = esbank_json("replay", "--data", history.data, "--account", a)
    assert [x["account"] for x in one["accounts"]] == [a]
    assert one["accounts"][0]["balance"] == history.states[history.last_seq][a]["balance"]


def test_replay_until_time(history):
    full = esbank_json("replay", "--data", history.data, "--until", history.whatif_at)
    out = esbank_json("replay", "--data", history.data, "--until-time", full["ts"])
    assert out["seq"] >= history.whatif_at and out["ts"] == full["ts"]
    before = esbank_json("replay", "--data", history.data, "--until-time", "2000-01-01")
    assert before["seq"] == 0 and before["accounts"] == []


def test_replay_uses_a_snapshot_when_there_is_one(history):
    snaps = snapshots(history.data)
    if not snaps:
        pytest.skip("no snapshot was written (snapshotter not writing yet)")
    # The newest snapshot with an event after it (one may be at the log's end).
    before_end = [s for s in snaps if s < history.last_seq]
    if not before_end:
        pytest.skip("the only snapshot is at the log's end")
    out = esbank_json("replay", "--data", history.data, "--until", before_end[-1] + 1)
    assert out["snapshot_seq"] == before_end[-1]
    assert out["events_replayed"] == 1


def test_replay_past_the_end_is_an_error(history):
    p = esbank("replay", "--data", history.data, "--until", history.last_seq + 5, check=False)
    assert p.returncode == EXIT_PERMANENT
    assert "ends at seq %d" % history.last_seq in p.stderr


# -- audit ---------------------------------------------------------------------------


def test_audit_passes_and_prints_the_head_hash(history):
    out = esbank_json("audit", "--data", history.data)
    assert out["ok"] is True
    assert out["last_seq"] == history.last_seq
    assert out["head_hash"] == history.head_hash
    assert out["snapshots_checked"] == snapshots(history.data)
    p = esbank("audit", "--data", history.data)
    assert history.head_hash in p.stdout


def _audit_fails(data):
    p = esbank("--json", "audit", "--data", data, check=False)
    assert p.returncode == EXIT_PERMANENT, p.stdout + p.stderr
    out = json.loads(p.stdout)
    assert out["ok"] is False
    assert "audit failed at seq %d, byte offset %d" % (out["problem"]["seq"],
                                                      out["problem"]["offset"]) in p.stderr
    return out["problem"]


def _flip(path, pos, mask=0x01):
    b = bytearray(path.read_bytes())
    b[pos] ^= mask
    path.write_bytes(bytes(b))


@pytest.mark.parametrize("which,where", [
    ("first", "len"), ("first", "seq"), ("first", "body"), ("first", "hash"),
    ("middle", "len_high"), ("middle", "body"), ("middle", "hash"),
    ("tenth", "body"), ("last", "body"), ("last", "hash"), ("last", "len"),
])
def test_audit_names_the_record_with_a_changed_byte(history, copy, which, where):
    recs = records(copy)
    idx = {"first": 0, "middle": len(recs) // 2, "tenth": 9, "last": len(recs) - 1}[which]
    seq, off, size = recs[idx]
    pos = {"len": off + 3, "len_high": off, "seq": off + 11, "body": off + 12 + (size - 44) // 2,
           "hash": off + size - 5}[where]
    _flip(copy / "events.log", pos, 0x40 if where == "len_high" else 0x01)
    problem = _audit_fails(copy)
    assert (problem["seq"], problem["offset"]) == (seq, off)


def test_audit_names_seq_0_for_a_changed_header(copy):
    _flip(copy / "events.log", 2)
    problem = _audit_fails(copy)
    assert (problem["seq"], problem["offset"]) == (0, 0)


def test_audit_names_a_removed_record(history, copy):
    recs = records(copy)
    i = len(recs) // 3
    seq, off, size = recs[i]
    start = recs[i - 1][1] + recs[i - 1][2]  # with its batch header, if it is alone in one
    raw = (copy / "events.log").read_bytes()
    (copy / "events.log").write_bytes(raw[:start] + raw[off + size:])
    problem = _audit_fails(copy)
    assert (problem["seq"], problem["offset"]) == (seq, start)
    # version 1: the next record has the wrong seq; version 2: the next batch's
    # header is not where its check says (it holds its own offset)
    assert ("sequence" if raw[7] == 1 else "batch header") in problem["what"]


def _offset_of(data, seq):
    return [o for s, o, _ in records(data) if s == seq][0]


def test_audit_names_a_damaged_snapshot(history, copy):
    snaps = snapshots(copy)
    if not snaps:
        pytest.skip("no snapshot was written (snapshotter not writing yet)")
    s = snaps[0]
    _flip(copy / "snapshots" / ("%020d.snap" % s), SNAP_HEADER + 10)
    problem = _audit_fails(copy)
    assert (problem["seq"], problem["offset"]) == (s, _offset_of(copy, s))
    assert "snapshot" in problem["what"]


def test_audit_names_a_snapshot_whose_state_differs(history, copy):
    """A balance changed and the checksum recomputed: only the replay finds it."""
    snaps = snapshots(copy)
    if not snaps:
        pytest.skip("no snapshot was written (snapshotter not writing yet)")
    s = snaps[-1]
    path = copy / "snapshots" / ("%020d.snap" % s)
    raw = path.read_bytes()
    state = msgpack.unpackb(raw[SNAP_HEADER:], raw=False, strict_map_key=False)
    acct = state["accounts"][0]
    acct[4] += 1  # balance (ledger.c's snapshot encoding)
    state["accounts"][1][4] -= 1
    body = msgpack.packb(state, use_bin_type=True)
    head = bytearray(raw[:SNAP_SUMMED])
    head[48:56] = struct.pack(">Q", len(body))
    summed = hashlib.blake2b(bytes(head) + body, digest_size=32).digest()
    path.write_bytes(bytes(head) + summed + body)
    problem = _audit_fails(copy)
    assert (problem["seq"], problem["offset"]) == (s, _offset_of(copy, s))
    assert "differs" in problem["what"]


# -- whatif ----------------------------------------------------------------------------


def test_whatif_large_withdrawal_bounces_later_transfers(history, tmp_path):
    a = history.accounts[0]
    before = history.states[history.whatif_at][a]["balance"]
    inject = tmp_path / "inject.jsonl"
    inject.write_text("# take almost everything out of A\n" + json.dumps(
        {"op": "withdraw", "account": a, "amount": before - 100}) + "\n")
    mtime = os.stat(history.data / "events.log").st_mtime_ns
    out = esbank_json("whatif", "--data", history.data, "--at", history.whatif_at,
                      "--inject", inject, "--then-rest")
    assert os.stat(history.data / "events.log").st_mtime_ns == mtime
    assert out["injected"][0]["ok"] is True
    bounced = [r["seq"] for r in out["rest"]["rejected"] if r["error"] == "insufficient_funds"]
    assert bounced == history.a_transfers
    assert out["rest"]["checked"] == history.last_seq - history.whatif_at
    diff = {x["account"]: x["difference"] for x in out["accounts"]}
    # A keeps what the bounced transfers would have taken: -(before - 100) + 3 x 30000.
    assert diff[a] == -(before - 100) + 3 * 30000
    assert diff[history.accounts[4]] == -3 * 30000
    p = esbank("whatif", "--data", history.data, "--at", history.whatif_at, "--inject", inject,
               "--then-rest")
    for seq in history.a_transfers:
        assert "seq %-8d money_transferred" % seq in p.stdout


def test_whatif_reports_bad_commands(history, tmp_path):
    inject = tmp_path / "bad.jsonl"
    inject.write_text("\n".join([
        json.dumps({"op": "transfer", "from": history.accounts[1], "to": "1" * 16,
                    "amount": 5}),
        json.dumps({"op": "withdraw", "account": history.accounts[1], "amount": 1.5}),
        json.dumps({"op": "open_account", "email": "new@example.com", "password": "x" * 12,
                    "account": "9" * 16}),
        json.dumps({"op": "verify_account", "account": "9" * 16, "code": "whatif"}),
        json.dumps({"op": "transfer", "from": "9" * 16, "to": history.accounts[1],
                    "amount": 100}),
        "not json",
    ]) + "\n")
    out = esbank_json("whatif", "--data", history.data, "--at", history.whatif_at,
                      "--inject", inject)
    res = [(i["ok"], i.get("error")) for i in out["injected"]]
    assert res == [(False, "not_found"), (False, "bad_request"), (True, None), (True, None),
                   (True, None), (False, "bad_request")]
    diff = {x["account"]: x["difference"] for x in out["accounts"]}
    assert diff["9" * 16] == 100000 - 100
    assert diff[history.accounts[1]] == 100


# -- whatif: every op injected, every event type re-checked (issue 11, item 14) ----------


class EveryType:
    """A history whose events after `at` are of every type, some of which an
    injection makes fail: see test_whatif_every_op_then_every_event_type."""


@pytest.fixture(scope="module")
def every_type(tmp_path_factory):
    from conftest import _drop_group, _make_group, new_email, open_account
    g = _make_group(tmp_path_factory.mktemp("every"))
    g.start()
    h = EveryType()
    try:
        c = g.client()
        h.a, h.b = open_verified(c), open_verified(c)
        h.c, h.e = open_account(c), open_account(c)
        h.at = c.status()["last_seq"]
        h.d_email = new_email("d")
        s = {}
        r = expect_ok(c.open_account(h.d_email, "pw-" + "d" * 12))
        s["open_d"], h.d = r["seq"], r["account"]
        h.f = open_account(c)
        s["open_f"] = c.status()["last_seq"]
        first = g.wait_code(h.f)
        s["reissue_f"] = expect_ok(c.reissue_code(h.f))["seq"]
        s["verify_f"] = expect_ok(c.verify_account(h.f, g.wait_code(h.f, exclude={first})))["seq"]
        s["verify_c"] = expect_ok(c.verify_account(h.c, g.wait_code(h.c)))["seq"]
        s["verify_e"] = expect_ok(c.verify_account(h.e, g.wait_code(h.e)))["seq"]
        s["transfer_ab"] = expect_ok(c.transfer(h.a, h.b, 1000))["seq"]
        s["withdraw_b"] = expect_ok(c.withdraw(h.b, 50))["seq"]
        s["transfer_ba"] = expect_ok(c.transfer(h.b, h.a, 10))["seq"]
        s["withdraw_a"] = expect_ok(c.withdraw(h.a, 200))["seq"]
        s["withdraw_b_key"] = expect_ok(c.withdraw(h.b, 300, key="kw"))["seq"]
        h.seqs = s
        h.last_seq = c.status()["last_seq"]
        g.stop()
        h.data = g.data
        yield h
    finally:
        _drop_group(g)


def test_whatif_every_op_then_every_event_type(every_type, tmp_path):
    """One injected command of every op; then every later real event, of every
    type, re-checked against the altered state with the outcome each must have.
    Before: the text report aborted (an assertion formatting the `to` of a
    rejected event that has none) and a later withdrawal from an account whose
    balance the injection changed was re-checked as bad_request."""
    h = every_type
    inject = tmp_path / "every.jsonl"
    lines = [
        {"op": "open_account", "email": h.d_email, "password": "x" * 12},
        {"op": "verify_account", "account": h.c, "code": "any"},
        {"op": "reissue_code", "account": h.e},
        {"op": "transfer", "from": h.b, "to": h.a, "amount": 500},
        {"op": "withdraw", "account": h.a, "amount": 100400},
        {"op": "withdraw", "account": h.b, "amount": 300, "key": "kw"},
    ]
    inject.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = esbank_json("whatif", "--data", h.data, "--at", h.at, "--inject", inject,
                      "--then-rest")
    injected = [(i["op"], i["ok"], i.get("seq")) for i in out["injected"]]
    assert injected == [(x["op"], True, h.at + n) for n, x in enumerate(lines, 1)]
    s = h.seqs
    want = {s["open_d"]: "already_exists",       # the injected open took its email
            s["verify_c"]: "already_verified",   # verified by the injection
            s["verify_e"]: "wrong_code",         # the injection reissued its code
            s["transfer_ab"]: "insufficient_funds",
            s["withdraw_a"]: "insufficient_funds",
            s["withdraw_b_key"]: "duplicate"}    # the injected withdraw used the key
    got = {r["seq"]: r["error"] for r in out["rest"]["rejected"]}
    assert got == want
    (dup,) = [r for r in out["rest"]["rejected"] if r["error"] == "duplicate"]
    assert dup["of_seq"] == h.at + 6
    rest = out["rest"]
    assert rest["checked"] == h.last_seq - h.at
    # open F, reissue F, verify F, withdraw B, transfer B -> A
    assert rest["accepted"] == 5 and rest["rejected_count"] == 5 and rest["duplicates"] == 1
    acc = {x["account"]: x for x in out["accounts"]}
    assert acc[h.a]["whatif"]["balance"] == 100000 + 500 - 100400 + 10
    assert acc[h.b]["whatif"]["balance"] == 100000 - 500 - 300 - 50 - 10
    assert acc[h.f]["whatif"]["verified"] is True
    assert acc[h.c]["whatif"]["verified"] is True and acc[h.c]["real"]["verified"] is True
    assert acc[h.d]["whatif"] is None
    assert out["totals"]["whatif"] == sum(x["whatif"]["balance"] for x in acc.values()
                                          if x["whatif"])
    p = esbank("whatif", "--data", h.data, "--at", h.at, "--inject", inject, "--then-rest",
               check=False)
    assert p.returncode == 0, "exit %d:\n%s%s" % (p.returncode, p.stdout, p.stderr)
    assert "seq %-8d money_withdrawn   %s $2.00  rejected: insufficient_funds" % (
        s["withdraw_a"], h.a) in p.stdout
    assert "seq %-8d account_verified  %s  rejected: already_verified" % (
        s["verify_c"], h.c) in p.stdout
    assert "seq %-8d account_opened    %s  rejected: already_exists" % (
        s["open_d"], h.d) in p.stdout
    assert "11 checked: 5 accepted, 5 rejected, 1 duplicates" in p.stdout
