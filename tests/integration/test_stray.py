"""Peer sessions, sequence gaps and sockets left behind (issue 11, items 2, 3, 7;
docs/peers.md, "Sessions").

test_stray_connections_disturb_nothing: under load, stray connections to
every peer socket (silent, garbage, a bus hello, plausible peer messages)
are refused; every command is answered, nothing a stray sent is logged, no
stray gets anything but "refused", status stays truthful.

test_logger_gap_ends_the_session / test_snapshotter_gap_ends_the_session: a
lone peer, driven by the test as its bus, ends the session at a sequence gap
instead of dropping the events and carrying on.

test_bus_resets_a_resolver_that_skips_a_seq: the real bus and logger with a
resolver played by the test that answers with a gap: the bus resets the link
and recovers (the command gets `unavailable`), instead of sending the gap to
the logger and holding the reply forever.

test_no_socket_left_after_a_clean_stop: every program removes its socket.

test_every_peer_ignores_what_it_does_not_understand: in a bus session, each
of the four peers (common/peer.c dispatches for all) logs and ignores a frame
that is not a map, a map without "t", unknown types and another peer's
message, answers none of them, keeps the session and answers the next
message it knows.
"""

import os
import socket
import struct
import subprocess
import threading
import time

import msgpack
import pytest

from conftest import build_dir, expect_ok, open_verified
from esbank_proto import Client

PEERS = ("resolver", "logger", "snapshotter", "mailer")
HELLO_TIMEOUT_S = 2.0  # PEER_HELLO_MS_MAX in common/peer.h
CONNECT_RETRY_S = 1.0


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def unpack(body):
    return msgpack.unpackb(body, raw=False, strict_map_key=False)


class Peer:
    """A raw framed connection to a socket, speaking as whoever the test likes."""

    def __init__(self, path, timeout=5.0):
        # A listener's socket file appears at bind(), a moment before its
        # listen(): a connect in between is refused, so it is tried again.
        deadline = time.monotonic() + CONNECT_RETRY_S
        while True:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            try:
                self.sock.connect(str(path))
                break
            except ConnectionRefusedError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        self.buf = b""

    def send(self, obj):
        self.send_raw(struct.pack(">I", len(pack(obj))) + pack(obj))

    def send_raw(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused and closed already: that is allowed

    def hello(self, pid=None):
        self.send({"t": "hello", "role": "bus", "pid": pid or os.getpid(), "session": 1})

    def frames(self, wait_s):
        """Every frame that arrives within wait_s (or until EOF); (frames, eof)."""
        out, eof = [], False
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(1 << 16)
            except socket.timeout:
                break
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                eof = True
                break
            self.buf += chunk
            while len(self.buf) >= 4:
                n = struct.unpack(">I", self.buf[:4])[0]
                if len(self.buf) < 4 + n:
                    break
                out.append(unpack(self.buf[4:4 + n]))
                self.buf = self.buf[4 + n:]
        return out, eof

    def recv(self, timeout=5.0):
        got, eof = self.frames_until(1, timeout)
        assert got, "no frame within %.1f s (eof %s)" % (timeout, eof)
        return got[0]

    def frames_until(self, n, timeout):
        got, eof = [], False
        deadline = time.monotonic() + timeout
        while len(got) < n and not eof and time.monotonic() < deadline:
            more, eof = self.frames(min(0.2, deadline - time.monotonic()))
            got += more
        return got, eof

    def wait_eof(self, timeout):
        """True when the other side closes within timeout (frames are dropped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, eof = self.frames(min(0.2, deadline - time.monotonic()))
            if eof:
                return True
        return False

    def close(self):
        self.sock.close()


def stray_event(seq):
    return pack({"seq": seq, "ts": int(time.time() * 1000), "type": "account_opened",
                 "account": "9999999999999999", "email": "stray@example.com",
                 "balance": 100000})


def stray_messages(role):
    """Plausible messages of the bus to role, each carrying the word stray."""
    req = pack({"op": "open_account", "id": 1, "email": "stray-req@example.com",
                "password": "stray-password"})
    return {
        "resolver": [{"t": "req", "items": [{"c": 1, "r": req}]}, {"t": "reset"},
                     {"t": "replay", "events": [stray_event(10 ** 6)]}],
        "logger": [{"t": "append", "first": 10 ** 6, "events": [stray_event(10 ** 6)]},
                   {"t": "read", "c": 1, "from": 1}],
        "snapshotter": [{"t": "events", "events": [stray_event(10 ** 6)]}, {"t": "reset"}],
        "mailer": [{"t": "mail", "items": [{"ev": stray_event(10 ** 6),
                                            "mail": pack({"to": "stray@example.com",
                                                          "account": "9999999999999999",
                                                          "code": "stray"})}]}],
    }[role]


def open_strays(g, role):
    """One stray of each kind on role's socket; returns them (not yet read)."""
    path = g.run / ("%s.sock" % role)
    strays = []
    silent = Peer(path)
    strays.append(silent)
    garbage = Peer(path)
    garbage.send_raw(b"\x00\x00\x00\x05hello" + b"\xff" * 64)
    strays.append(garbage)
    hello = Peer(path)
    hello.hello()  # a valid bus hello, while the real bus's session is open
    for m in stray_messages(role):
        hello.send(m)
    strays.append(hello)
    plain = Peer(path)  # plausible messages without a hello
    for m in stray_messages(role):
        plain.send(m)
    strays.append(plain)
    return strays


def test_stray_connections_disturb_nothing(fresh_group):
    g = fresh_group()
    c = g.client(timeout=30)
    a, b = open_verified(c), open_verified(c)
    before = c.status()
    rounds, per_round = 6, 400
    ids, strays = [], {}
    for rnd in range(rounds):
        ids += [c.send("transfer", {"from": a, "to": b, "amount": 1}) for _ in range(per_round)]
        for role in PEERS:
            strays.setdefault(role, []).extend(open_strays(g, role))
    missing = []
    for rid in ids:
        try:
            expect_ok(c.reply(rid, timeout=20 if not missing else 0.01))
        except TimeoutError:
            missing.append(rid)
    assert not missing, "%d of %d transfers unanswered" % (len(missing), len(ids))
    # every stray is refused (the silent ones after HELLO_TIMEOUT_S) and sees nothing else
    for role, conns in strays.items():
        for s in conns:
            got, eof = s.frames(HELLO_TIMEOUT_S + 1.5)
            assert eof, "a stray on %s.sock was not closed" % role
            assert all(f.get("t") == "refused" for f in got), \
                "a stray on %s.sock received %r" % (role, [f.get("t") for f in got])
            s.close()
    st = c.status()
    assert st["state"] == "live" and st["durable_seq"] == st["last_seq"], st
    assert st["durable_seq"] == before["durable_seq"] + len(ids), (before, st)
    assert all(st["peers"][r]["connected"] for r in PEERS), st
    evs, _ = c.all_events()
    assert [e["seq"] for e in evs] == list(range(1, st["durable_seq"] + 1))
    assert not [e for e in evs if "stray" in repr(e)], "a stray's event was logged"
    assert expect_ok(c.get_account(b))["balance"] == 100000 + len(ids)
    log = g.log_text()
    for role in PEERS:
        assert "%s: refused a connection" % role in log, role
    # the group still works, and a peer restart (a real new bus session) too
    expect_ok(c.transfer(a, b, 1))


def test_no_socket_left_after_a_clean_stop(fresh_group):
    g = fresh_group()
    socks = sorted(p.name for p in g.run.iterdir() if p.is_socket())
    assert set(socks) >= {"bus.sock", *("%s.sock" % r for r in PEERS)}, socks
    assert g.stop() == 0
    left = sorted(p.name for p in g.run.iterdir() if p.is_socket())
    assert left == [], "sockets left after a clean stop: %r" % left


class Lone:
    """One program of the group started alone, on a data and run dir of its own."""

    def __init__(self, tmp_path, prog, *args):
        self.data, self.run = tmp_path / "data", tmp_path / "run"
        self.run.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.log = open(tmp_path / ("%s.log" % prog), "ab")
        exe = build_dir() / prog / ("esbank-%s" % prog)
        self.proc = subprocess.Popen([str(exe), "--data", str(self.data), "--run",
                                      str(self.run), *args], stdout=self.log, stderr=self.log)
        self.sock = self.run / ("%s.sock" % prog)
        deadline = time.monotonic() + 10
        while not self.sock.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.sock.exists(), "%s did not listen" % prog

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


@pytest.fixture
def lone(tmp_path):
    made = []

    def start(prog, *args):
        p = Lone(tmp_path / ("%s%d" % (prog, len(made))), prog, *args)
        made.append(p)
        return p

    yield start
    for p in made:
        p.stop()


def event(seq):
    return pack({"seq": seq, "ts": 1700000000000 + seq, "type": "account_opened",
                 "account": "%016d" % (4000000000000000 + seq),
                 "email": "u%d@example.com" % seq, "balance": 100000,
                 "pwhash": "$argon2id$x", "code_hash": "ab" * 32})


def bus_session(sock):
    """Connects as the bus; returns (peer, its hello)."""
    p = Peer(sock)
    p.hello()
    h = p.recv()
    assert h.get("t") == "hello", h
    return p, h


def test_logger_gap_ends_the_session(lone):
    lg = lone("logger")
    p, h = bus_session(lg.sock)
    assert h["hwm"] == 0
    p.send({"t": "append", "first": 1, "events": [event(1)]})
    d = p.recv()
    assert d == {"t": "durable", "seq": 1, "head": d["head"]}, d
    p.send({"t": "append", "first": 3, "events": [event(3)]})  # 2 never came
    assert p.wait_eof(3.0), "the logger kept a session whose stream has a gap"
    p.close()
    p, h = bus_session(lg.sock)  # the bus reconnects and resends from the hwm
    assert h["hwm"] == 1, h
    p.send({"t": "append", "first": 2, "events": [event(2), event(3)]})
    d = p.recv()
    assert d.get("t") == "durable" and d.get("seq") == 3, d
    p.close()


def test_snapshotter_gap_ends_the_session(lone):
    sn = lone("snapshotter", "--snapshot-every", "1000000")
    p, h = bus_session(sn.sock)
    assert h["hwm"] == 0
    p.send({"t": "events", "events": [event(1)]})
    assert p.recv()["hwm"] == 1
    p.send({"t": "events", "events": [event(3)]})  # 2 never came
    assert p.wait_eof(3.0), "the snapshotter kept a session whose stream has a gap"
    p.close()
    p, h = bus_session(sn.sock)
    assert h["hwm"] == 1, h
    p.send({"t": "events", "events": [event(2), event(3)]})
    assert p.recv()["hwm"] == 3
    p.close()


# a message each peer knows, with the answer it must give on an empty state
KNOWN = {
    "resolver": ({"t": "replay", "events": []}, {"t": "replayed", "hwm": 0}),
    "logger": ({"t": "read", "c": 7, "from": 1}, {"t": "read", "c": 7, "first": 1}),
    "snapshotter": ({"t": "events", "events": []}, {"t": "ack", "hwm": 0, "snapshot": 0}),
    "mailer": ({"t": "mail", "items": []}, {"t": "ack", "hwm": 0}),
}
OTHERS = {"resolver": "append", "logger": "events", "snapshotter": "mail", "mailer": "req"}


def test_every_peer_ignores_what_it_does_not_understand(lone):
    for role in PEERS:
        peer = lone(role, *(("--pwhash-cost", "min") if role == "resolver" else ()))
        p, h = bus_session(peer.sock)
        assert (h["role"], h["hwm"], h["pid"]) == (role, 0, peer.proc.pid), h
        not_a_map = pack([1, 2, 3])
        p.send_raw(struct.pack(">I", len(not_a_map)) + not_a_map)
        for junk in ({"x": 1}, {"t": "no-such-type"}, {"t": 7}, {"t": OTHERS[role]}):
            p.send(junk)
        msg, want = KNOWN[role]
        p.send(msg)
        got = p.recv()
        assert {k: got.get(k) for k in want} == want, (role, got)
        more, eof = p.frames(0.3)
        assert more == [] and not eof, (role, more, eof)
        p.close()
        peer.stop()
        with open(peer.log.name, "rb") as f:
            log = f.read().decode(errors="replace")
        assert log.count("%s: a message from the bus of a type it does not know" % role) == 4, \
            (role, log)
        assert "%s: a frame from the bus that is not one msgpack map" % role in log, (role, log)


class FakeResolver(threading.Thread):
    """Listens on RUN/resolver.sock as the resolver; answers each command with
    an event, skipping seq 2; records what every connection received."""

    def __init__(self, run):
        super().__init__(daemon=True)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(str(run / "resolver.sock"))
        self.srv.listen(4)
        self.srv.settimeout(0.2)
        self.sessions = []  # per connection: the messages received
        self.hwm = 0
        self.stop = False

    def run(self):
        while not self.stop:
            try:
                conn, _ = self.srv.accept()
            except socket.timeout:
                continue
            self.serve(conn)

    def serve(self, conn):
        got = []
        self.sessions.append(got)
        p = Peer.__new__(Peer)
        p.sock, p.buf = conn, b""
        # at once, as a resolver before sessions did (so the test runs on old code too)
        p.send({"t": "hello", "role": "resolver", "hwm": self.hwm, "pid": os.getpid()})
        while not self.stop:
            frames, eof = p.frames(0.2)
            for m in frames:
                got.append(m)
                if m.get("t") == "req":
                    p.send({"t": "res", "items": [self.answer(it) for it in m["items"]]})
                elif m.get("t") == "reset":
                    self.hwm = 0
                    p.send({"t": "replayed", "hwm": 0})
                elif m.get("t") == "load":
                    p.send({"t": "loaded", "hwm": 0})
            if eof:
                conn.close()
                return

    def answer(self, item):
        req = unpack(item["r"])
        self.hwm += 2 if self.hwm == 1 else 1  # 1, then 3: a gap
        return {"c": item["c"], "w": self.hwm,
                "reply": pack({"id": req["id"], "ok": True, "seq": self.hwm}),
                "ev": event(self.hwm)}


def test_bus_resets_a_resolver_that_skips_a_seq(tmp_path, lone):
    lg = lone("logger")
    run = lg.run
    res = FakeResolver(run)
    res.start()
    bus = subprocess.Popen([str(build_dir() / "bus" / "esbank-bus"), "--run", str(run)],
                           stdout=open(tmp_path / "bus.log", "ab"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        c = None
        while time.monotonic() < deadline:
            try:
                c = c or Client(run / "bus.sock", timeout=5)
                if c.status().get("state") == "live":
                    break
            except OSError:
                pass
            time.sleep(0.05)
        assert c and c.status()["state"] == "live"
        cmd = {"from": "4000000000000001", "to": "4000000000000002", "amount": 1}
        assert c.call("transfer", cmd)["seq"] == 1
        r = c.call("transfer", cmd, timeout=8)  # the fake resolver answers with seq 3
        assert r.get("ok") is False and r.get("error") == "unavailable", r
        # the bus reset the link, the fake resolver (ahead of the log) is reset
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(
                m.get("t") == "reset" for s in res.sessions[1:] for m in s):
            time.sleep(0.05)
        assert len(res.sessions) >= 2, "the bus kept the link after a gap"
        assert any(m.get("t") == "reset" for s in res.sessions[1:] for m in s), res.sessions
        assert all(s[0].get("role") == "bus" for s in res.sessions if s), res.sessions
        st = c.status()
        assert st["durable_seq"] == 1, st
        assert [e["seq"] for e in c.all_events()[0]] == [1]
        c.close()
    finally:
        res.stop = True
        bus.terminate()
        bus.wait(10)
