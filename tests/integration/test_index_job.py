"""A long log's account index is opened in the logger's thread pool after the
start (logger/indexjob.c, issue 15 item 4): the group goes live without
waiting for it; statements answer unavailable until it is ready and then
hold every event, those made durable meanwhile too."""

import subprocess
import sys
from pathlib import Path

from conftest import Group, expect_ok, wait_for

GENLOG = Path(__file__).resolve().parents[2] / "scripts" / "bench.d" / "genlog.py"
ACCOUNTS = 100
TRANSFERS = 205000  # with the openings: past LOGGER_INDEX_SYNC_EVENTS_MAX (200,000)


def test_a_long_logs_index_is_opened_after_the_start(tmp_path):
    g = Group(tmp_path / "g")
    g.data.mkdir(parents=True)
    subprocess.run([sys.executable, str(GENLOG), str(g.data), str(ACCOUNTS), str(TRANSFERS)],
                   check=True, capture_output=True)
    g.start()
    try:
        c = g.client()
        assert "account index is opened in the thread pool" in g.log_text()
        a = expect_ok(c.call("events", **{"from": 1, "limit": 1}))["events"][0]["account"]
        b = expect_ok(c.call("events", **{"from": 2, "limit": 1}))["events"][0]["account"]
        r = expect_ok(c.transfer(a, b, 1))  # the first append starts the job

        def answered():
            s = c.call("statement", account=a, after_seq=r["seq"] - 1, limit=1)
            assert s.get("ok") or (s.get("error") == "unavailable" and
                                   "being opened" in s.get("message", "")), s
            return s if s.get("ok") else None

        s = wait_for(answered, timeout=30, what="the account index")
        assert s["entries"][-1]["seq"] == r["seq"]
        assert s["closing_balance"] == r["balance"]
        assert s["closing_balance"] == expect_ok(c.get_account(a))["balance"]
        assert "account index ready" in g.log_text()
        r = expect_ok(c.transfer(b, a, 2))  # kept up after it was handed over
        s = expect_ok(c.call("statement", account=b, after_seq=r["seq"] - 1, limit=1))
        assert s["entries"][-1]["seq"] == r["seq"] and s["closing_balance"] == r["balance"]
        c.close()
        assert g.stop() == 0
    finally:
        g.cleanup()
