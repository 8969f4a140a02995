"""Mail: the spool, the SMTP and Mailgun transports, retries, dead letters,
crash safety, and the mailer side of catch-up (docs/mail.md).

Needs aiosmtpd (Debian's python3-aiosmtpd): run with /usr/bin/python3 -m pytest.
"""

import asyncio
import base64
import json
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.parse
from email import message_from_bytes
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import msgpack
import pytest

from conftest import (LINK_RE, build_dir, free_port, cmdline, descendants, expect_ok, new_email,
                      new_password, wait_for)

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")

FROM = "esbank <noreply@bank.test>"
MG_KEY = "key-test-123"
MG_DOMAIN = "mg.bank.test"
FAST_RETRY = {"ESBANK_MAIL_RETRY_MIN_MS": "100", "ESBANK_MAIL_RETRY_MAX_MS": "400",
              "ESBANK_MAIL_RESCAN_MS": "300", "ESBANK_MAIL_FROM": FROM}
MSGID_RE = re.compile(r"<esbank-(\d+)-(\d+)@bank\.test>")


# -- a real SMTP server ------------------------------------------------------


class SmtpSink:
    """aiosmtpd on loopback; records every message (at DATA, before 250)."""

    def __init__(self, port, delay=0.0):
        self.port, self.delay = port, delay
        self.received = []   # (rcpts, message, t_start, t_confirm or None)
        self.lock = threading.Lock()
        self.controller = None

    async def handle_DATA(self, server, session, envelope):
        rec = [list(envelope.rcpt_tos), message_from_bytes(envelope.content,
                                                           policy=default_policy),
               time.monotonic(), None]
        with self.lock:
            self.received.append(rec)
        if self.delay:
            await asyncio.sleep(self.delay)
        rec[3] = time.monotonic()
        return "250 OK"

    def start(self):
        self.controller = aiosmtpd_controller.Controller(self, hostname="127.0.0.1",
                                                         port=self.port)
        self.controller.start()

    def stop(self):
        if self.controller:
            self.controller.stop()
            self.controller = None

    def messages(self):
        with self.lock:
            return list(self.received)

    def by_seq(self):
        out = {}
        for rcpts, msg, _, _ in self.messages():
            m = MSGID_RE.search(msg["Message-ID"] or "")
            out.setdefault(int(m.group(1)) if m else 0, []).append((rcpts, msg))
        return out


@pytest.fixture
def smtp():
    sinks = []

    def make(start=True, delay=0.0):
        s = SmtpSink(free_port(), delay)
        if start:
            s.start()
        sinks.append(s)
        return s
    yield make
    for s in sinks:
        s.stop()


# -- a Mailgun look-alike ----------------------------------------------------


class MailgunMock:
    """Checks each request as Mailgun's API wants it; answers from plan[to]."""

    def __init__(self):
        self.requests, self.errors, self.plan = [], [], {}
        self.lock = threading.Lock()
        mock = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n).decode()
                code = mock.check(self.path, self.headers, body)
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps({"message": "code %d" % code}).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def check(self, path, headers, body):
        want_auth = "Basic " + base64.b64encode(("api:" + MG_KEY).encode()).decode()
        fields = urllib.parse.parse_qs(body, keep_blank_values=True)
        errs = []
        if path != "/v3/%s/messages" % MG_DOMAIN:
            errs.append("path " + path)
        if headers.get("Authorization") != want_auth:
            errs.append("auth %r" % headers.get("Authorization"))
        if not headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            errs.append("content type %r" % headers.get("Content-Type"))
        for f in ("from", "to", "subject", "text"):
            if len(fields.get(f, [])) != 1 or not fields[f][0]:
                errs.append("field %s: %r" % (f, fields.get(f)))
        with self.lock:
            if errs:
                self.errors.append(errs)
                return 401
            to = fields["to"][0]
            plan = self.plan.get(to, [])
            code = plan.pop(0) if plan else 200
            self.requests.append((to, fields, code))
            return code

    def delivered(self, to):
        with self.lock:
            return [f for t, f, c in self.requests if t == to and c == 200]

    def attempts(self, to):
        with self.lock:
            return [c for t, f, c in self.requests if t == to]

    def close(self):
        self.server.shutdown()


# -- helpers -----------------------------------------------------------------


def start_group(fresh_group, monkeypatch, env):
    for k, v in {**FAST_RETRY, **env}.items():
        monkeypatch.setenv(k, v)
    g = fresh_group()
    # a fresh mailer starts at the end of the log as of its hello: wait for it
    wait_for(lambda: "mailer connected" in g.log_text(), what="the mailer's hello")
    return g


def open_acct(c, addr):
    r = expect_ok(c.open_account(addr, new_password()))
    return r["account"], r["seq"]


def mailer_pid(g):
    for p in descendants(g.proc.pid):
        if "esbank-mailer" in cmdline(p):
            return p
    return None


def esbank_mail(g, *args):
    out = subprocess.run([str(build_dir() / "client" / "esbank"), "--json", "mail",
                          "--data", str(g.data)] + list(args),
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def read_hwm(g):
    try:
        return int((g.data / "mail" / "hwm").read_text())
    except (OSError, ValueError):
        return 0


# -- SMTP --------------------------------------------------------------------


def test_smtp_headers_link_and_withdrawal(fresh_group, monkeypatch, smtp):
    s = smtp()
    g = start_group(fresh_group, monkeypatch,
                    {"ESBANK_SMTP_URL": "smtp://127.0.0.1:%d" % s.port})
    c = g.client()
    addr = new_email("smtp")
    acct, seq = open_acct(c, addr)
    got = wait_for(lambda: s.by_seq().get(seq), what="verification mail")
    assert len(got) == 1
    rcpts, msg = got[0]
    assert rcpts == [addr]
    assert msg["To"] == addr and msg["From"] == FROM
    assert msg["Subject"] == "Verify your esbank account"
    assert msg["MIME-Version"] == "1.0"
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content_charset().lower() == "utf-8"
    assert msg["Date"] and MSGID_RE.fullmatch(msg["Message-ID"]).group(2) == acct
    text = msg.get_content()
    assert "http://127.0.0.1:4000/api/verify?account_number=%s&code=" % acct in text
    (num, code), = LINK_RE.findall(text)
    expect_ok(c.verify_account(acct, urllib.parse.unquote(code)))
    w = expect_ok(c.withdraw(acct, 12345))
    got = wait_for(lambda: s.by_seq().get(w["seq"]), what="withdrawal mail")
    msg = got[0][1]
    assert msg["Subject"] == "Withdrawal from your esbank account"
    body = msg.get_content()
    assert "$123.45 was withdrawn" in body and "new balance is $876.55" in body
    time.sleep(0.5)
    assert all(len(v) == 1 for v in s.by_seq().values())
    assert esbank_mail(g) == []


def test_smtp_down_then_up_every_mail_once(fresh_group, monkeypatch, smtp):
    s = smtp(start=False)
    g = start_group(fresh_group, monkeypatch,
                    {"ESBANK_SMTP_URL": "smtp://127.0.0.1:%d" % s.port})
    c = g.client()
    seqs = [open_acct(c, new_email("down"))[1] for _ in range(8)]
    wait_for(lambda: len([m for m in esbank_mail(g) if m["state"] == "pending"]) == 8,
             what="8 pending mails")
    time.sleep(0.6)  # a few failed attempts each
    s.start()
    wait_for(lambda: set(seqs) <= set(s.by_seq()), what="all mails after the server came up")
    wait_for(lambda: esbank_mail(g) == [], what="an empty queue")
    time.sleep(0.5)
    counts = {k: len(v) for k, v in s.by_seq().items()}
    assert counts == {q: 1 for q in seqs}


def test_sigkill_in_flight_loses_none_resends_only_window(fresh_group, monkeypatch, smtp):
    s = smtp(delay=0.1)
    g = start_group(fresh_group, monkeypatch,
                    {"ESBANK_SMTP_URL": "smtp://127.0.0.1:%d" % s.port,
                     "ESBANK_MAIL_INFLIGHT": "4"})
    c = g.client()
    s.stop()  # hold deliveries until every mail is spooled
    seqs = [open_acct(c, new_email("kill"))[1] for _ in range(30)]
    wait_for(lambda: read_hwm(g) >= max(seqs), what="all mails spooled")
    s.start()
    wait_for(lambda: len(s.messages()) >= 10, what="deliveries under way")
    pid = mailer_pid(g)
    os.kill(pid, signal.SIGKILL)
    t_kill = time.monotonic()
    snapshot = s.messages()
    # the window: the receiver had the mail, the mailer had not yet made its
    # removal from queue/ durable (no 250 yet, or a 250 just before the kill)
    window = set()
    for rcpts, msg, t0, t1 in snapshot:
        if t1 is None or t1 > t_kill - 0.05:
            window.add(int(MSGID_RE.search(msg["Message-ID"]).group(1)))
    wait_for(lambda: mailer_pid(g) not in (None, pid), what="the mailer restarted")
    wait_for(lambda: set(seqs) <= set(s.by_seq()), what="every mail after the restart")
    wait_for(lambda: esbank_mail(g) == [], what="an empty queue")
    time.sleep(0.5)
    counts = {k: len(v) for k, v in s.by_seq().items()}
    assert set(counts) == set(seqs), "lost or unknown mails"
    resent = {k for k, n in counts.items() if n > 1}
    assert all(counts[k] == 2 for k in resent)
    assert resent <= window, "resent outside the window: %r (window %r)" % (resent, window)
    print("in flight at the kill: %d, resent: %d" % (len(window), len(resent)))


# -- Mailgun -----------------------------------------------------------------


def test_mailgun_retries_and_dead_letters(fresh_group, monkeypatch):
    mg = MailgunMock()
    try:
        g = start_group(fresh_group, monkeypatch,
                        {"MAILGUN_API_PRIVATE_KEY": MG_KEY, "MAILGUN_DOMAIN": MG_DOMAIN,
                         "MAILGUN_API_BASE": mg.base})
        c = g.client()
        ok, e500, e429, e400 = (new_email(t) for t in ("ok", "e500", "e429", "e400"))
        mg.plan = {e500: [500, 500], e429: [429], e400: [400]}
        accts = {a: open_acct(c, a) for a in (ok, e500, e429, e400)}
        for a in (ok, e500, e429):
            wait_for(lambda: mg.delivered(a), what="mailgun delivery to " + a)
        dead = wait_for(lambda: [m for m in esbank_mail(g) if m["state"] == "dead"],
                        what="a dead mail")
        time.sleep(0.5)
        assert mg.errors == []
        assert mg.attempts(ok) == [200]
        assert mg.attempts(e500) == [500, 500, 200]
        assert mg.attempts(e429) == [429, 200]
        assert mg.attempts(e400) == [400]
        f = mg.delivered(ok)[0]
        assert f["from"] == [FROM] and f["subject"] == ["Verify your esbank account"]
        assert "account_number=%s&code=" % accts[ok][0] in f["text"][0]
        assert len(dead) == 1 and dead[0]["to"] == e400 and dead[0]["id"] == accts[e400][1]
        assert dead[0]["reason"].startswith("HTTP 400")
        assert (g.data / "mail" / "dead" / str(accts[e400][1])).exists()
        # re-queued, it is taken up by the rescan and delivered
        assert esbank_mail(g, "requeue", "--all") == [{"id": accts[e400][1],
                                                       "requeued": True}]
        wait_for(lambda: mg.delivered(e400), what="the re-queued mail")
        wait_for(lambda: esbank_mail(g) == [], what="an empty spool")
    finally:
        mg.close()


# -- the mailer alone: fresh hello, address book, catch-up items ---------------


class FakeBus:
    """Stands in for esbank-bus on RUN/mailer.sock."""

    def __init__(self, run, timeout=10.0):
        path = str(run / "mailer.sock")
        wait_for(lambda: os.path.exists(path), what="mailer.sock")
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        # a peer serves only a connection that opens with the bus hello (docs/peers.md)
        self.send({"t": "hello", "role": "bus", "pid": os.getpid(), "session": 1})

    def recv(self):
        hdr = self._read(4)
        return msgpack.unpackb(self._read(struct.unpack(">I", hdr)[0]), raw=False)

    def _read(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            assert chunk, "mailer closed the connection"
            buf += chunk
        return buf

    def send(self, obj):
        body = msgpack.packb(obj, use_bin_type=True)
        self.sock.sendall(struct.pack(">I", len(body)) + body)

    def close(self):
        self.sock.close()


def ev_opened(seq, acct, addr):
    return msgpack.packb({"seq": seq, "ts": 1700000000000 + seq, "type": "account_opened",
                          "account": acct, "email": addr, "balance": 100000,
                          "pwhash": "$argon2id$x", "code_hash": "ab" * 32})


def ev_withdrawn(seq, acct, amount, balance):
    return msgpack.packb({"seq": seq, "ts": 1700000000000 + seq, "type": "money_withdrawn",
                          "account": acct, "amount": amount, "balance": balance})


def mail_map(addr, acct, **kw):
    return msgpack.packb({"to": addr, "account": acct, **kw})


class LoneMailer:
    def __init__(self, tmp_path, env=None):
        self.data, self.run = tmp_path / "data", tmp_path / "run"
        self.env = {**os.environ, **FAST_RETRY, **(env or {})}
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([str(build_dir() / "mailer" / "esbank-mailer"),
                                      "--data", str(self.data), "--run", str(self.run)],
                                     env=self.env, stderr=subprocess.DEVNULL)
        self.bus = FakeBus(self.run)
        return self.bus.recv()

    def stop(self):
        self.bus.close()
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(10) == 0
        os.unlink(self.run / "mailer.sock") if (self.run / "mailer.sock").exists() else None

    def outbox(self):
        d = self.data / "mail" / "outbox" / "new"
        return sorted(p.read_bytes() for p in d.iterdir()) if d.exists() else []

    def kill(self):
        """Leaves no mailer behind when a test fails halfway."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def lone_mailers():
    made = []
    yield lambda *a, **k: made.append(LoneMailer(*a, **k)) or made[-1]
    for m in made:
        m.kill()


def test_mailer_catch_up_items_fresh_hello_and_address_book(tmp_path, lone_mailers):
    m = lone_mailers(tmp_path)
    acct = "1234567890123456"
    hello = m.start()
    assert isinstance(hello.pop("pid"), int) and hello == \
        {"t": "hello", "role": "mailer", "hwm": 0, "fresh": True}
    # a fresh mailer is told where the log ends: nothing before is mailed
    m.bus.send({"t": "mail", "items": [], "hwm": 40})
    assert m.bus.recv() == {"t": "ack", "hwm": 40}
    m.bus.send({"t": "mail", "items": [
        {"ev": ev_withdrawn(39, acct, 1, 99999)},      # before the start: skipped
        {"ev": ev_opened(41, acct, "carol@example.com"),
         "mail": mail_map("carol@example.com", acct, code="C0DE")}]})
    assert m.bus.recv() == {"t": "ack", "hwm": 41}
    wait_for(lambda: len(m.outbox()) == 1, what="the verification mail")
    m.stop()
    hello = m.start()  # not fresh any more; the address book is on disk
    assert isinstance(hello.pop("pid"), int) and hello == \
        {"t": "hello", "role": "mailer", "hwm": 41}
    m.bus.send({"t": "mail", "items": [
        {"ev": ev_opened(41, acct, "carol@example.com")},  # again: skipped
        {"ev": ev_withdrawn(42, acct, 2550, 97450)},       # catch-up: no "mail"
        {"ev": ev_withdrawn(43, "9999999999999999", 1, 1)}]})  # no address: skipped
    assert m.bus.recv() == {"t": "ack", "hwm": 43}
    wait_for(lambda: len(m.outbox()) == 2, what="the withdrawal mail")
    text = [x for x in m.outbox() if b"Withdrawal" in x][0].decode()
    assert "To: carol@example.com\r\n" in text
    assert "$25.50 was withdrawn" in text and "new balance is $974.50" in text
    m.stop()


def test_mailer_throughput_to_local_smtp(tmp_path, smtp, lone_mailers):
    s = smtp()
    n = int(os.environ.get("ESBANK_MAIL_BENCH_N", "1000"))
    m = lone_mailers(tmp_path, {"ESBANK_SMTP_URL": "smtp://127.0.0.1:%d" % s.port})
    m.start()
    m.bus.send({"t": "mail", "items": [], "hwm": 0})
    m.bus.recv()
    acct = "1234567890123456"
    t0 = time.monotonic()
    batch = 100
    for first in range(1, n + 1, batch):
        items = [{"ev": ev_withdrawn(q, acct, 1, 1000000 - q),
                  "mail": mail_map("bench@example.com", acct)}
                 for q in range(first, min(first + batch, n + 1))]
        m.bus.send({"t": "mail", "items": items})
        m.bus.recv()
    wait_for(lambda: len(s.messages()) >= n, timeout=120, what="%d mails" % n)
    dt = time.monotonic() - t0
    rate = n / dt
    print("mailer -> local SMTP: %d mails in %.2f s = %.0f mails/s" % (n, dt, rate))
    (tmp_path / "rate.txt").write_text("%.0f\n" % rate)
    assert len(s.by_seq()) == n
    m.stop()
