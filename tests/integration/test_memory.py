"""The bus's memory budget (issue 11, item 15): besides the per-client cap
(BUS_CLIENT_OUT_BYTES_MAX, test_limits.py), the reply bytes queued for all
clients together have a budget (BUS_CLIENTS_OUT_BYTES_TOTAL_MAX, lowered here
with ESBANK_BUS_CLIENTS_OUT_BYTES_MAX). Many slow clients that ask for big
replies and never read: the slowest are dropped with a logged reason, the bus
stays alive and within its budget, and a well-behaved client is served
throughout.
"""

import os
import select
import socket
import threading
import time

from conftest import _drop_group, _make_group, expect_ok, open_verified
from esbank_proto import Client, encode, frame
from test_limits import check_live_and_replay, rss_kb

BUDGET = 16 << 20          # lowered from 1 GiB
SLOW_CLIENTS = 12
REQUESTS_PER_SLOW = 3000   # ~90 MB of replies each: far past the budget
EVENTS_IN_LOG = 300        # an events reply is then ~30 kB
HUP_WAIT_S = 20            # for the bus to cut a slow client
# What the bus's peak RSS may grow by: an output buffer grows by doubling
# (up to twice the budget), plus the rest of its work (kB). ~21 MB seen; the
# old bus, which had no budget and never freed a dropped client's replies,
# grew by ~800 MB.
RSS_SLACK_KB = 2 * BUDGET // 1024 + 16 * 1024


def _slow_client(path, outcome, i):
    """Pipelines `events` requests and never reads; records whether the bus
    cut the connection (it shuts the socket down: POLLHUP here) in time."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(str(path))
    s.settimeout(HUP_WAIT_S)
    req = b"".join(frame(encode({"op": "events", "id": n, "from": 1, "limit": 10000}))
                   for n in range(1, 101))
    outcome[i] = "still connected"
    try:
        for _ in range(REQUESTS_PER_SLOW // 100):
            s.sendall(req)
        p = select.poll()
        p.register(s, select.POLLHUP)
        if any(ev & select.POLLHUP for _, ev in p.poll(HUP_WAIT_S * 1000)):
            outcome[i] = "closed"
    except (BrokenPipeError, ConnectionResetError):
        outcome[i] = "closed"
    except socket.timeout:
        pass  # the bus stopped reading us and never closed
    finally:
        s.close()


def test_slow_readers_are_dropped_within_the_budget(tmp_path_factory):
    g = _make_group(tmp_path_factory.mktemp("memory"))
    g.env["ESBANK_BUS_CLIENTS_OUT_BYTES_MAX"] = str(BUDGET)
    # under AddressSanitizer freed buffers wait in a quarantine (256 MB)
    g.env["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=1"
    g.start()
    try:
        c = g.client()
        a = open_verified(c)
        while expect_ok(c.status())["last_seq"] < EVENTS_IN_LOG:
            expect_ok(c.withdraw(a, 1))
        pid = int((g.run / "bus.pid").read_text())
        rss0 = rss_kb(pid)
        outcome = {}
        slow = [threading.Thread(target=_slow_client, args=(g.sock_path, outcome, i),
                                 daemon=True) for i in range(SLOW_CLIENTS)]
        for t in slow:
            t.start()
        good = Client(g.sock_path, timeout=10)
        worst = 0.0
        while any(t.is_alive() for t in slow):
            t0 = time.monotonic()
            expect_ok(good.ping())
            expect_ok(good.get_account(a))
            worst = max(worst, time.monotonic() - t0)
            time.sleep(0.02)
        for t in slow:
            t.join()
        assert os.path.exists("/proc/%d" % pid), "the bus died"
        assert int((g.run / "bus.pid").read_text()) == pid, "the bus was restarted"
        grown = rss_kb(pid, "VmHWM") - rss0
        assert grown < RSS_SLACK_KB, "the bus grew by %d kB (budget %d kB)" % (
            grown, BUDGET // 1024)
        assert outcome == {i: "closed" for i in range(SLOW_CLIENTS)}, outcome
        assert worst < 2.0, "the well-behaved client waited %.1f s" % worst
        drops = [line for line in g.log_text().splitlines()
                 if "dropped: the slowest reader" in line]
        assert drops, g.log_tail()
        assert all("(pid %d)" % os.getpid() in line and "budget %d" % BUDGET in line
                   for line in drops), drops
        expect_ok(good.status())
        good.close()
        check_live_and_replay(g)
    finally:
        _drop_group(g)
