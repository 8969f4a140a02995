"""Limits (issue 8): every limit of the bus has an answer when exceeded, and
after each test the server is live and its state equals a replay of its log.

  BUS_CLIENTS_MAX (1024)          one more client gets overloaded, then EOF
  BUS_CLIENT_INFLIGHT_MAX         the bus stops reading that client only
  BUS_CLIENT_OUT_BYTES_MAX (64M)  a client that never reads is disconnected
  (the budget of all clients' replies together: test_memory.py)
  BUS_HELD_MAX / BUS_HOLD_MS_MAX  requests held while recovering
  FRAME_BODY_MAX, string fields   bad_frame / bad_request

check_live_and_replay() is shared with test_foreign_user.py and
test_disk_faults.py.
"""

import os
import resource
import signal
import socket
import struct
import threading
import time

import pytest

from conftest import OPENING_BALANCE, expect_err, expect_ok, open_account, open_verified
from esbank_proto import FRAME_BODY_MAX, Client, ConnectionClosed, encode, frame

BUS_CLIENTS_MAX = 1024
BUS_CLIENT_INFLIGHT_MAX = 8192
BUS_CLIENT_OUT_BYTES_MAX = 64 << 20
BUS_HELD_MAX = 100000
BUS_HOLD_MS_MAX = 10000


# -- the check after every test ------------------------------------------------


def replay(events):
    """{account: (balance, verified)} by PROTOCOL.md's rules, and the total
    withdrawn; asserts the sequence has no gap and every event is legal."""
    bal, ver, withdrawn = {}, {}, 0
    for i, e in enumerate(events, 1):
        assert e["seq"] == i, "gap or repeat at %d: %r" % (i, e)
        t = e["type"]
        if t == "account_opened":
            assert e["account"] not in bal and e["balance"] == OPENING_BALANCE, e
            bal[e["account"]], ver[e["account"]] = e["balance"], False
        elif t == "account_verified":
            assert ver[e["account"]] is False, e
            ver[e["account"]] = True
        elif t == "code_reissued":
            assert ver[e["account"]] is False, e
        elif t == "money_transferred":
            f, to, n = e["from"], e["to"], e["amount"]
            assert f != to and ver[f] and ver[to] and 1 <= n <= bal[f], e
            bal[f] -= n
            bal[to] += n
        elif t == "money_withdrawn":
            a, n = e["account"], e["amount"]
            assert ver[a] and 1 <= n <= bal[a], e
            bal[a] -= n
            withdrawn += n
        else:
            raise AssertionError("unknown event %r" % (e,))
    return {a: (bal[a], ver[a]) for a in bal}, withdrawn


def check_live_and_replay(g, timeout=20.0):
    """The group answers, is live with everything durable, and get_account of
    every account equals the replay of the log (events read back over the
    protocol) and of the log file itself (esbank audit's view: same count).
    Returns the number of events."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            c = Client(g.sock_path, timeout=10.0)
            st = expect_ok(c.status())
            if st["state"] == "live" and st["durable_seq"] == st["last_seq"]:
                break
            c.close()
        except (OSError, TimeoutError, ConnectionClosed):
            pass
        assert time.monotonic() < deadline, "group not live and settled within %.0f s" % timeout
        time.sleep(0.1)
    try:
        events, last = c.all_events(page=10000)
        assert last == st["last_seq"] and len(events) == last, (last, st, len(events))
        want, withdrawn = replay(events)
        rids = {a: c.send("get_account", {"account": a}) for a in want}
        got = {}
        for a, rid in rids.items():
            r = expect_ok(c.reply(rid, timeout=30))
            got[a] = (r["balance"], r["verified"])
        diff = {a: (got[a], want[a]) for a in want if got[a] != want[a]}
        assert not diff, "state differs from the replay of the log: %r" % (
            dict(list(diff.items())[:5]),)
        assert sum(b for b, _ in got.values()) == OPENING_BALANCE * len(want) - withdrawn
        expect_ok(c.ping())
    finally:
        c.close()
    return last


def bus_pid(g):
    return int((g.run / "bus.pid").read_text())


def child_pid(g, name):
    """The pid in RUN/<name>.pid; None while esbankd rewrites it."""
    try:
        return int((g.run / ("%s.pid" % name)).read_text())
    except (OSError, ValueError):
        return None


def rss_kb(pid, field="VmRSS"):
    """A memory figure of /proc/PID/status in kB (VmHWM: the peak RSS)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        if hard != resource.RLIM_INFINITY and hard < n:
            pytest.skip("RLIMIT_NOFILE hard limit %d < %d" % (hard, n))
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


def raw_socket(g):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10.0)
    s.connect(str(g.sock_path))
    return s


def read_frame(s, timeout=10.0):
    """One frame from a blocking socket; None at EOF."""
    s.settimeout(timeout)
    buf = b""
    while len(buf) < 4:
        chunk = s.recv(4 - len(buf))
        if not chunk:
            return None
        buf += chunk
    (n,) = struct.unpack(">I", buf)
    body = b""
    while len(body) < n:
        chunk = s.recv(n - len(body))
        if not chunk:
            return None
        body += chunk
    import msgpack
    return msgpack.unpackb(body, raw=False, strict_map_key=False)


@pytest.fixture(scope="module")
def lgroup(tmp_path_factory):
    """One group for the limit tests; each test leaves it live and checked."""
    from conftest import _drop_group, _make_group
    g = _make_group(tmp_path_factory.mktemp("limits"))
    g.start()
    yield g
    _drop_group(g)


# -- connections ---------------------------------------------------------------


def test_1024_clients_then_overloaded_and_close(lgroup):
    """1,000 concurrent clients each get answers; up to BUS_CLIENTS_MAX are
    admitted; one more gets overloaded and is closed; a slot freed is
    usable again."""
    raise_nofile(BUS_CLIENTS_MAX + 200)
    socks = []
    try:
        for _ in range(BUS_CLIENTS_MAX):
            socks.append(raw_socket(lgroup))
        # every one of them is served, all requests in flight at once
        for i, s in enumerate(socks):
            s.sendall(frame(encode({"op": "ping", "id": i + 1})))
        for i, s in enumerate(socks):
            r = read_frame(s)
            assert r == {"id": i + 1, "ok": True}, (i, r)
        extra = raw_socket(lgroup)
        r = read_frame(extra)
        assert r is not None, "the client beyond the limit got no answer"
        expect_err(r, "overloaded")
        assert read_frame(extra) is None, "the client beyond the limit was not closed"
        extra.close()
        # free one slot: a new client is admitted
        socks.pop().close()
        deadline = time.monotonic() + 5
        while True:
            c = raw_socket(lgroup)
            c.sendall(frame(encode({"op": "ping", "id": 5})))
            r = read_frame(c)
            c.close()
            if r and r.get("ok"):
                break
            assert time.monotonic() < deadline, "no slot after one client left: %r" % (r,)
            time.sleep(0.05)
    finally:
        for s in socks:
            s.close()
    check_live_and_replay(lgroup)


# -- a slow client ---------------------------------------------------------------


def test_one_byte_every_50ms_while_1000_transfers(lgroup):
    """A client trickling one byte every 50 ms holds no one up: another
    client completes 1,000 transfers meanwhile; the slow one's frame is
    answered once it is whole."""
    c = lgroup.client(timeout=30)
    a, b = open_verified(c), open_verified(c)
    slow = raw_socket(lgroup)
    body = encode({"op": "get_account", "id": 99, "account": a, "pad": "x" * 400})
    data = frame(body)
    stop = threading.Event()
    sent = [0]

    def trickle():
        for i in range(len(data)):
            if stop.is_set():
                return
            slow.sendall(data[i:i + 1])
            sent[0] += 1
            time.sleep(0.05)

    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    t0 = time.monotonic()
    ok = 0
    for start in range(0, 1000, 100):
        rids = [c.send("transfer", {"from": a if i % 2 == 0 else b,
                                    "to": b if i % 2 == 0 else a, "amount": 1})
                for i in range(start, start + 100)]
        for rid in rids:
            expect_ok(c.reply(rid, timeout=30))
            ok += 1
    took = time.monotonic() - t0
    assert ok == 1000
    assert t.is_alive(), "the trickle finished before the transfers: the test proves nothing"
    assert sent[0] < len(data)
    assert took < 20, "1,000 transfers took %.1f s beside a slow client" % took
    # the slow client is still connected and its request works when whole
    stop.set()
    t.join()
    slow.sendall(data[sent[0]:])
    r = read_frame(slow)
    assert r and r.get("id") == 99 and r.get("ok") is True, r
    assert r["balance"] == OPENING_BALANCE
    slow.close()
    check_live_and_replay(lgroup)


# -- a client that never reads -------------------------------------------------


def _pipeline_never_read(g, make_request, n, send_timeout):
    """Sends n requests on one connection without reading a byte. Returns
    (requests sent, True if the server closed the connection)."""
    s = raw_socket(g)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(send_timeout)
    batch = 1000
    sent = 0
    closed = False
    try:
        while sent < n:
            data = b"".join(frame(encode(make_request(sent + i + 1)))
                            for i in range(min(batch, n - sent)))
            s.sendall(data)
            sent += min(batch, n - sent)
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    except socket.timeout:
        pass  # the bus stopped reading us
    return s, sent, closed


def _others_served(g, n=50, max_s=2.0):
    c = Client(g.sock_path, timeout=10)
    try:
        t0 = time.monotonic()
        for _ in range(n):
            expect_ok(c.ping())
        expect_ok(c.status())
        return time.monotonic() - t0
    finally:
        c.close()


def test_pipeline_100000_requests_never_reading(lgroup):
    """100,000 pipelined requests from a client that never reads, while the
    resolver is stopped: the bus stops reading that client after
    BUS_CLIENT_INFLIGHT_MAX requests (its send stalls), others are served at
    once, the bus's memory stays bounded; once the resolver goes on and the
    client reads, it gets every one of the 100,000 replies."""
    pid = bus_pid(lgroup)
    rss0 = rss_kb(pid)
    resolver = child_pid(lgroup, "resolver")
    req = lambda i: {"op": "get_account", "id": i, "account": "1000000000000000"}
    os.kill(resolver, signal.SIGSTOP)
    try:
        s, sent, closed = _pipeline_never_read(lgroup, req, 100000, send_timeout=3.0)
        assert not closed
        # in flight + what the two socket buffers hold, far below 100,000
        assert BUS_CLIENT_INFLIGHT_MAX <= sent < 50000, sent
        took = _others_served(lgroup)
        assert took < 5, "other clients waited %.1f s" % took
        assert rss_kb(pid) - rss0 < 64 * 1024, "bus grew by %d kB" % (rss_kb(pid) - rss0)
    finally:
        os.kill(resolver, signal.SIGCONT)
    s.settimeout(60)
    got = {}

    def reader():
        while len(got) < 100000:
            r = read_frame(s, timeout=60)
            if r is None:
                return
            got[r["id"]] = r

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    s.sendall(b"".join(frame(encode(req(i + 1))) for i in range(sent, 100000)))
    t.join(120)
    assert len(got) == 100000, "only %d of 100,000 replies" % len(got)
    assert all(r.get("error") == "not_found" for r in got.values())
    s.close()
    check_live_and_replay(lgroup)


def test_pipeline_never_reading_big_replies_disconnects_only_that_client(lgroup):
    """A client that asks for big replies (events) and never reads is
    disconnected once more than BUS_CLIENT_OUT_BYTES_MAX is queued for it;
    nobody else waits meanwhile."""
    c = lgroup.client()
    # enough events for each reply to be large (>= ~30 kB)
    while expect_ok(c.status())["last_seq"] < 300:
        a = open_verified(c)
        for _ in range(20):
            expect_ok(c.withdraw(a, 1))
    other_times = []
    done = threading.Event()

    def other():
        while not done.is_set():
            other_times.append(_others_served(lgroup, n=5))
            time.sleep(0.05)

    t = threading.Thread(target=other, daemon=True)
    t.start()
    s, sent, closed = _pipeline_never_read(
        lgroup, lambda i: {"op": "events", "id": i, "from": 1, "limit": 10000},
        100000, send_timeout=60.0)
    done.set()
    t.join()
    if not closed:
        # the send may have finished before the bus gave up on us: it must
        # still cut the connection (reading shows the end after the backlog)
        deadline = time.monotonic() + 60
        total = 0
        s.settimeout(5)
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(1 << 20)
            except (ConnectionResetError, socket.timeout):
                chunk = b""
            if not chunk:
                closed = True
                break
            total += len(chunk)
        assert total <= BUS_CLIENT_OUT_BYTES_MAX + FRAME_BODY_MAX * 4, total
    assert closed, "the client that never reads was not disconnected (%d sent)" % sent
    assert sent < 100000 or closed
    assert other_times and max(other_times) < 5, "others waited: %r" % max(other_times)
    s.close()
    check_live_and_replay(lgroup)


# -- sizes ---------------------------------------------------------------------


@pytest.mark.parametrize("fields, why", [
    ({"op": "open_account", "email": "a" * 250 + "@x.io", "password": "p" * 12}, "email 255"),
    ({"op": "open_account", "email": "a@b", "password": "p" * 1025}, "password 1025"),
    ({"op": "open_account", "email": "a@b", "password": "p" * 7}, "password 7"),
    ({"op": "withdraw", "account": "4417123456789012", "amount": 1, "key": "k" * 65}, "key 65"),
    ({"op": "withdraw", "account": "4417123456789012", "amount": 1, "key": ""}, "key 0"),
    ({"op": "open_account", "email": "x" * 600000 + "@b.c", "password": "p" * 12}, "email huge"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_string_field_limits(lgroup, fields, why):
    c = lgroup.client()
    seq = expect_ok(c.status())["last_seq"]
    expect_err(c.call(fields["op"], {k: v for k, v in fields.items() if k != "op"}),
               "bad_request")
    expect_ok(c.ping())
    assert expect_ok(c.status())["last_seq"] == seq


def test_frame_size_limit(lgroup):
    """A frame of FRAME_BODY_MAX bytes is read; one byte more is bad_frame
    and the connection is closed; others are not affected."""
    c = lgroup.client()
    base = encode({"op": "ping", "id": 7, "pad": ""})
    big = encode({"op": "ping", "id": 7, "pad": "x" * (FRAME_BODY_MAX - len(base) - 4)})
    assert len(big) == FRAME_BODY_MAX
    c.send_body(big)
    expect_ok(c.reply(7))
    bad = lgroup.client()
    bad.send_bytes(struct.pack(">I", FRAME_BODY_MAX + 1) + b"x" * 1000)
    assert bad.read_until_closed(5)
    assert bad.frames and bad.frames[0].get("error") == "bad_frame"
    expect_ok(c.ping())
    check_live_and_replay(lgroup)


# -- held during recovery --------------------------------------------------------


def test_requests_held_during_recovery_are_bounded(lgroup):
    """While the bus recovers (resolver restarted, logger stopped so the
    replay cannot finish), requests are held: at most BUS_HELD_MAX; beyond
    that each gets unavailable at once. When recovery completes the held
    ones are answered, in full."""
    c = lgroup.client()
    acct = open_account(c)
    logger = child_pid(lgroup, "logger")
    resolver = child_pid(lgroup, "resolver")
    per, nconn = 6400, 16  # 102,400 requests: 2,400 more than BUS_HELD_MAX
    total = per * nconn
    conns = []
    os.kill(logger, signal.SIGSTOP)
    try:
        os.kill(resolver, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while True:
            probe = lgroup.client(timeout=5)
            st = probe.status()
            probe.close()
            if st["state"] == "recovering":
                break
            assert time.monotonic() < deadline, st
            time.sleep(0.02)
        t0 = time.monotonic()
        for _ in range(nconn):
            k = lgroup.client(timeout=30)
            k.send_bytes(b"".join(frame(encode({"op": "get_account", "id": i + 1,
                                                "account": acct}))
                                  for i in range(per)))
            conns.append(k)
        time.sleep(1.0)
        for k in conns:
            k._pump(0.05)
        early = [f for k in conns for f in k.frames]
        assert time.monotonic() - t0 < BUS_HOLD_MS_MAX / 1000.0 - 2, "too slow to test"
        assert all(f.get("error") == "unavailable" for f in early), early[:3]
        assert len(early) == total - BUS_HELD_MAX, len(early)
    finally:
        os.kill(logger, signal.SIGCONT)
    deadline = time.monotonic() + 60
    for k in conns:
        while len(k.frames) < per and time.monotonic() < deadline:
            k._pump(0.5)
    frames = [f for k in conns for f in k.frames]
    assert len(frames) == total, len(frames)
    import collections
    kinds = collections.Counter(f.get("message", "ok") for f in frames)
    assert sum(f.get("ok") is True for f in frames) == BUS_HELD_MAX, kinds
    for k in conns:
        k.close()
    check_live_and_replay(lgroup)
