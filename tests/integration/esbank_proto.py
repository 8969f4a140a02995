"""esbank_proto - a small client for the esbank wire protocol (PROTOCOL.md).

Framing: every message is a 4-byte unsigned big-endian length L, then L bytes
holding exactly one msgpack map. Requests carry "op" and a client-chosen "id";
replies carry the same "id" and may arrive in any order, so the client keeps
every frame it has read, keyed by id, until somebody asks for it. A
subscription's event frames ({"id": N, "event": {...}}) are kept apart from
ordinary replies.

The client also records every successful command (its op, its fields and the
reply) in `journal`, a list that can be shared between clients, so tests can
check the event log against what the server acknowledged.
"""

import collections
import itertools
import select
import socket
import struct
import time

import msgpack

FRAME_HEADER_BYTES = 4
FRAME_BODY_MAX = 1024 * 1024

COMMAND_OPS = ("open_account", "verify_account", "reissue_code", "transfer", "withdraw")


class ConnectionClosed(Exception):
    """The server closed the connection (EOF) before the awaited frame."""


def encode(obj):
    """msgpack-encodes obj (str as msgpack str, bytes as msgpack bin)."""
    return msgpack.packb(obj, use_bin_type=True)


def frame(body):
    """One wire frame holding body (bytes), header included."""
    return struct.pack(">I", len(body)) + body


def decode(body):
    """Decodes one frame body; non-string map keys are allowed."""
    return msgpack.unpackb(body, raw=False, strict_map_key=False)


class Client:
    """A connection to bus.sock."""

    def __init__(self, path, timeout=10.0, journal=None):
        self.path = str(path)
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(self.path)
        self.sock.setblocking(False)
        self._buf = bytearray()
        self._replies = collections.defaultdict(collections.deque)
        self._events = collections.defaultdict(collections.deque)
        self._sent = {}  # id -> (op, fields) of requests whose reply is pending
        self._ids = itertools.count(1)
        self.eof = False
        self.frames = []  # every frame read, in arrival order (for ordering checks)
        self.journal = journal if journal is not None else []

    # -- sending -----------------------------------------------------------

    def next_id(self):
        return next(self._ids)

    def send_bytes(self, data):
        """Writes raw bytes (no framing added)."""
        view = memoryview(data)
        deadline = time.monotonic() + self.timeout
        while view:
            try:
                n = self.sock.send(view)
                view = view[n:]
            except BlockingIOError:
                # The server may be replying while we write: keep reading so
                # neither side blocks on a full buffer.
                self._pump(0.05)
                if time.monotonic() > deadline:
                    raise TimeoutError("send blocked")

    def send_body(self, body):
        """Sends one frame around raw body bytes."""
        self.send_bytes(frame(body))

    def send_map(self, obj):
        """Sends obj (normally a dict) as one frame, exactly as given."""
        self.send_body(encode(obj))

    def send(self, op, fields=None, rid=None, **kw):
        """Sends a request without waiting; returns its id."""
        if rid is None:
            rid = self.next_id()
        req = {"op": op, "id": rid}
        req.update(fields or {})
        req.update(kw)
        self._sent[rid] = (op, dict(fields or {}, **kw))
        self.send_map(req)
        return rid

    # -- receiving ---------------------------------------------------------

    def _pump(self, wait_s):
        """Reads what is available (waiting up to wait_s); parses frames."""
        if self.eof:
            return
        r, _, _ = select.select([self.sock], [], [], max(0.0, wait_s))
        if not r:
            return
        while True:
            try:
                chunk = self.sock.recv(1 << 16)
            except BlockingIOError:
                break
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.eof = True
                break
            self._buf += chunk
        self._parse()

    def _parse(self):
        while len(self._buf) >= FRAME_HEADER_BYTES:
            (n,) = struct.unpack(">I", self._buf[:FRAME_HEADER_BYTES])
            if n == 0 or n > FRAME_BODY_MAX:
                raise AssertionError("server sent a frame of length %d" % n)
            if len(self._buf) < FRAME_HEADER_BYTES + n:
                break
            body = bytes(self._buf[FRAME_HEADER_BYTES:FRAME_HEADER_BYTES + n])
            del self._buf[:FRAME_HEADER_BYTES + n]
            msg = decode(body)
            if not isinstance(msg, dict):
                raise AssertionError("server sent a frame that is not a map: %r" % (msg,))
            self.frames.append(msg)
            rid = msg.get("id")
            if "event" in msg and "ok" not in msg:
                self._events[rid].append(msg["event"])
            else:
                self._replies[rid].append(msg)

    def _wait(self, ready, timeout, what):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not ready():
            if self.eof:
                raise ConnectionClosed("connection closed while waiting for %s" % what)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no %s within the timeout" % what)
            self._pump(min(left, 0.5))

    def reply(self, rid, timeout=None):
        """Waits for the reply to request rid and returns it."""
        self._wait(lambda: self._replies.get(rid), timeout, "reply to id %r" % (rid,))
        msg = self._replies[rid].popleft()
        sent = self._sent.pop(rid, None)
        if sent and msg.get("ok") is True and sent[0] in COMMAND_OPS and "seq" in msg:
            self.journal.append((msg["seq"], sent[0], sent[1], msg))
        return msg

    def next_event(self, sub_id, timeout=None):
        """Waits for the next event frame of subscription sub_id."""
        self._wait(lambda: self._events.get(sub_id), timeout, "event for subscription %r" % sub_id)
        return self._events[sub_id].popleft()

    def pending_events(self, sub_id):
        return len(self._events.get(sub_id, ()))

    def read_until_closed(self, timeout=5.0):
        """Reads until EOF; True if the server closed within timeout."""
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self._pump(min(0.2, deadline - time.monotonic()))
        return self.eof

    # -- requests ----------------------------------------------------------

    def call(self, op, fields=None, timeout=None, **kw):
        """Sends one request and waits for its reply."""
        return self.reply(self.send(op, fields, **kw), timeout)

    def ping(self):
        return self.call("ping")

    def status(self):
        return self.call("status")

    def open_account(self, email, password, key=None):
        return self.call("open_account", _opt({"email": email, "password": password}, key))

    def verify_account(self, account, code, key=None):
        return self.call("verify_account", _opt({"account": account, "code": code}, key))

    def reissue_code(self, account, key=None):
        return self.call("reissue_code", _opt({"account": account}, key))

    def transfer(self, frm, to, amount, key=None):
        return self.call("transfer", _opt({"from": frm, "to": to, "amount": amount}, key))

    def withdraw(self, account, amount, key=None):
        return self.call("withdraw", _opt({"account": account, "amount": amount}, key))

    def get_account(self, account):
        return self.call("get_account", {"account": account})

    def authenticate(self, account, password):
        return self.call("authenticate", {"account": account, "password": password})

    def events(self, **kw):
        """One `events` request (kw: from_, limit)."""
        fields = {}
        if "from_" in kw:
            fields["from"] = kw.pop("from_")
        fields.update(kw)
        return self.call("events", fields)

    def all_events(self, page=1000):
        """Every durable event, read page by page from seq 1."""
        out = []
        nxt = 1
        while True:
            r = self.events(from_=nxt, limit=page)
            if r.get("ok") is not True:
                raise AssertionError("events failed: %r" % (r,))
            if not r["events"]:
                return out, r["last_seq"]
            out.extend(r["events"])
            nxt = r["events"][-1]["seq"] + 1
            if nxt > r["last_seq"]:
                return out, r["last_seq"]

    def subscribe(self, from_=None):
        """Sends subscribe; returns its id. Read the ok with reply(id)."""
        return self.send("subscribe", {} if from_ is None else {"from": from_})

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def _opt(fields, key):
    if key is not None:
        fields["key"] = key
    return fields
