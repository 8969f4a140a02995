"""A long log's start-up check overlapped with the replay (issue 15 item 4,
common/logfile.c logfile_open_overlapped): the logger says hello once the
log's layout is checked, with "end" the log's last seq, and its verified
prefix grows as the chain's hashes are computed; the bus replays the prefix
and goes live only once the whole log is verified and replayed. Damage
found part way stops the group as before, with nothing past the verified
prefix ever served and nothing live."""

import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conftest import Client, Group, esbankd_path, expect_ok

GENLOG = Path(__file__).resolve().parents[2] / "scripts" / "bench.d" / "genlog.py"
ACCOUNTS = 100
TRANSFERS = 270000  # with the openings: past LOGFILE_CHECK_OVERLAP_MIN (262,144)
EVENTS = 2 * ACCOUNTS + TRANSFERS
RECORD_HEAD = 12  # len (4) + seq (8); the hash (32) follows the body
HASH = 32


def make_log(data):
    data.mkdir(parents=True)
    subprocess.run([sys.executable, str(GENLOG), str(data), str(ACCOUNTS), str(TRANSFERS)],
                   check=True, capture_output=True)
    return data / "events.log"


def record_at(raw, seq):
    """(offset, body length) of record seq in a version 1 log (genlog's)."""
    off = 8
    while True:
        n, s = struct.unpack_from(">IQ", raw, off)
        if s == seq:
            return off, n
        off += RECORD_HEAD + n + HASH


def test_a_long_log_goes_live_after_its_check_with_every_event(tmp_path):
    g = Group(tmp_path / "g")
    log = make_log(g.data)
    head = log.read_bytes()[-HASH:].hex()  # version 1: the last record's hash ends the file
    g.start()
    try:
        said = g.log_text()
        assert "their hashes are checked while the bus replays them" in said, said
        c = g.client()
        st = expect_ok(c.call("status"))
        assert st["state"] == "live"
        assert st["head_hash"] == head, st
        last = expect_ok(c.call("events", **{"from": EVENTS, "limit": 5}))["events"]
        assert [e["seq"] for e in last] == [EVENTS]
        a, b = (expect_ok(c.call("events", **{"from": s, "limit": 1}))["events"][0]["account"]
                for s in (1, 2))
        r = expect_ok(c.transfer(a, b, 1))
        assert r["seq"] == EVENTS + 1  # every event replayed: no seq given twice
        c.close()
        assert g.stop() == 0
    finally:
        g.cleanup()


def test_damage_found_by_the_check_stops_the_group_with_nothing_live(tmp_path):
    data = tmp_path / "data"
    log = make_log(data)
    raw = bytearray(log.read_bytes())
    bad = EVENTS * 3 // 4
    off, n = record_at(raw, bad)
    raw[off + RECORD_HEAD + n // 2] ^= 0x01  # the body changed, its stored hash kept
    log.write_bytes(bytes(raw))
    run = Path(tempfile.mkdtemp(prefix="esb", dir="/tmp")) / "run"
    out_path = tmp_path / "esbankd.log"
    with open(out_path, "wb") as out_f:
        p = subprocess.Popen([str(esbankd_path()), "--data", str(data), "--run", str(run),
                              "--http", "off", "--pwhash-cost", "min"],
                             stdin=subprocess.DEVNULL, stdout=out_f, stderr=subprocess.STDOUT,
                             start_new_session=True)
    seen = 0  # the highest seq any client read saw while the group ran
    deadline = time.monotonic() + 60
    while p.poll() is None and time.monotonic() < deadline:
        try:
            c = Client(run / "bus.sock", timeout=1.0)
            r = c.call("events", timeout=1.0, **{"from": bad - 2, "limit": 10})
            c.close()
            seen = max([seen] + [e["seq"] for e in r.get("events", [])])
        except Exception:
            pass
        time.sleep(0.02)
    if p.poll() is None:
        os.killpg(p.pid, 9)
    rc = p.wait()
    out = out_path.read_text(errors="replace")
    assert rc == 100, out
    assert seen < bad, (seen, bad)
    assert "events.log is damaged at seq %d (byte offset %d)" % (bad, off) in out, out
    assert "their hashes are checked while the bus replays them" in out, out
    assert "esbank is live" not in out and "live at seq" not in out, out


def test_a_torn_last_record_found_by_the_check_is_cut_and_the_bus_starts_again(tmp_path):
    """Version 1: a flipped byte in the last record is a torn tail. The
    layout passes, the check's last chunk does not: the classic check cuts
    it, the logger ends the session whose hello said end = EVENTS, and the
    bus goes live at EVENTS - 1 and gives the next event that seq."""
    g = Group(tmp_path / "g")
    log = make_log(g.data)
    raw = bytearray(log.read_bytes())
    off, n = record_at(raw, EVENTS)
    raw[off + RECORD_HEAD + n // 2] ^= 0x01
    log.write_bytes(bytes(raw))
    g.start()
    try:
        said = g.log_text()
        assert "cut a torn last record" in said and "(from seq %d" % EVENTS in said, said
        assert "their hashes are checked while the bus replays them" in said, said
        c = g.client()
        a, b = (expect_ok(c.call("events", **{"from": s, "limit": 1}))["events"][0]["account"]
                for s in (1, 2))
        r = expect_ok(c.transfer(a, b, 1))
        assert r["seq"] == EVENTS
        c.close()
        assert g.stop() == 0
    finally:
        g.cleanup()
