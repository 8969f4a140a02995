"""Harness for the esbank integration tests: starts the real group.

The group runs as
    <build>/supervisor/esbankd --data D --run R --http off --pwhash-cost min
                               --ready-fd N
in a temporary directory; the build directory comes from $ESBANK_BUILD
(default <repo>/build). esbankd's output goes to a log file whose tail is
attached to the report of every test that fails while the group is in use.
"""

import email
import email.policy
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from esbank_proto import Client  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0
MAIL_TIMEOUT_S = 10.0
OPENING_BALANCE = 100000

LINK_RE = re.compile(r"account_number=(\d+)(?:&amp;|&|%26)code=([A-Za-z0-9_\-.~%]+)")

_active_groups = []

# Tests count on a snapshot at every --snapshot-every events, however fast they
# come: no minimum time between two snapshots (the default is 1 s).
os.environ.setdefault("ESBANK_SNAPSHOT_INTERVAL_MS", "0")


def free_port():
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_dir():
    return Path(os.environ.get("ESBANK_BUILD", REPO / "build"))


def esbankd_path():
    p = build_dir() / "supervisor" / "esbankd"
    if not p.exists():
        pytest.fail("esbankd not built: %s (set ESBANK_BUILD)" % p)
    return p


def wait_for(pred, timeout=15.0, what="condition"):
    """pred()'s first true value, polled every 50 ms; fails after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s" % what)


# -- processes -----------------------------------------------------------


def _proc_ppids():
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            continue
        out[int(d)] = int(fields[1])
    return out


def descendants(pid):
    """Live (non-zombie) descendants of pid, from /proc."""
    ppids = _proc_ppids()
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        for child, pp in ppids.items():
            if pp == parent and child not in found:
                found.append(child)
                frontier.append(child)
    return found


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class Group:
    """One esbank group (esbankd and its children) on a data directory."""

    def __init__(self, base, extra_args=(), env=None):
        self.base = Path(base)
        self.env = dict(env or {})  # added to the environment of esbankd
        self.base.mkdir(parents=True, exist_ok=True)
        self.data = self.base / "data"
        # Socket paths must stay short (108 bytes): the run dir lives in /tmp.
        self._run_parent = Path(tempfile.mkdtemp(prefix="esb", dir="/tmp"))
        self.run = self._run_parent / "run"
        self.log_path = self.base / "esbankd.log"
        self.extra_args = list(extra_args)
        self.proc = None
        self.ready_via = None
        self.starts = 0
        self.clients = []
        self.journal = []  # (seq, op, fields, reply) of every acknowledged command
        self.passwords = set()
        self.codes = set()
        self.last_stop_rc = None
        self.last_stop_leftovers = []

    @property
    def sock_path(self):
        return self.run / "bus.sock"

    @property
    def outbox(self):
        return self.data / "mail" / "outbox" / "new"

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines=150):
        return "\n".join(self.log_text().splitlines()[-lines:])

    def start(self, timeout=READY_TIMEOUT_S, wait_peers=True):
        """Starts esbankd and waits until it says it is ready. With
        wait_peers, also waits (briefly) until status shows every peer
        connected, so tests do not race the mailer's first connection."""
        assert self.proc is None
        rfd, wfd = os.pipe()
        argv = [str(esbankd_path()), "--data", str(self.data), "--run", str(self.run),
                "--http", "off", "--pwhash-cost", "min", "--ready-fd", str(wfd)]
        argv += self.extra_args
        self.starts += 1
        logf = open(self.log_path, "ab")
        logf.write(("\n===== start %d: %s\n" % (self.starts, " ".join(argv))).encode())
        logf.flush()
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=subprocess.STDOUT, pass_fds=(wfd,),
                                         env={**os.environ, **self.env},
                                         start_new_session=True)
        finally:
            os.close(wfd)
            logf.close()
        try:
            self._wait_ready(rfd, timeout)
        except BaseException:
            self.kill9()
            raise
        finally:
            os.close(rfd)
        if wait_peers:
            self.wait_peers()

    def wait_peers(self, timeout=5.0, roles=("resolver", "logger", "snapshotter", "mailer")):
        """True once status shows every role connected (False on timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                c = Client(self.sock_path, timeout=1.0)
                try:
                    peers = c.call("status", timeout=1.0).get("peers") or {}
                finally:
                    c.close()
                if all((peers.get(r) or {}).get("connected") is True for r in roles):
                    return True
            except (OSError, TimeoutError, ConnectionError):
                pass
            time.sleep(0.05)
        return False

    def _wait_ready(self, rfd, timeout):
        deadline = time.monotonic() + timeout
        got = b""
        pipe_open = True
        last_poll = 0.0
        while time.monotonic() < deadline:
            if pipe_open:
                r, _, _ = select.select([rfd], [], [], 0.1)
                if r:
                    chunk = os.read(rfd, 256)
                    if not chunk:
                        pipe_open = False
                    got += chunk
                    if b"READY" in got:
                        self.ready_via = "pipe"
                        return
            else:
                time.sleep(0.1)
            if self.proc.poll() is not None:
                raise RuntimeError("esbankd exited with %s before it was ready:\n%s"
                                   % (self.proc.returncode, self.log_tail()))
            if time.monotonic() - last_poll > 0.25:
                last_poll = time.monotonic()
                if self._status_live():
                    # esbankd learns "live" the same way, then writes READY:
                    # give it a moment so ready_via tells whether it does.
                    self.ready_via = "status"
                    grace = time.monotonic() + 3.0
                    while pipe_open and time.monotonic() < grace:
                        r, _, _ = select.select([rfd], [], [], 0.1)
                        if r:
                            chunk = os.read(rfd, 256)
                            pipe_open = bool(chunk)
                            got += chunk
                            if b"READY" in got:
                                self.ready_via = "pipe"
                                break
                    return
        raise TimeoutError("esbankd not ready after %.0f s (pipe got %r):\n%s"
                           % (timeout, got, self.log_tail()))

    def _status_live(self):
        if not self.sock_path.exists():
            return False
        try:
            c = Client(self.sock_path, timeout=1.0)
        except OSError:
            return False
        try:
            r = c.call("status", timeout=1.0)
            return r.get("ok") is True and r.get("state") == "live"
        except Exception:
            return False
        finally:
            c.close()

    def wait_live(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._status_live():
                return True
            time.sleep(0.1)
        return False

    # A reply's default wait; replicated groups wait for a NATS quorum too.
    client_timeout = 10.0

    def client(self, timeout=None):
        c = Client(self.sock_path, timeout=self.client_timeout if timeout is None else timeout,
                   journal=self.journal)
        c.group = self
        self.clients.append(c)
        return c

    def _close_clients(self):
        for c in self.clients:
            c.close()
        self.clients = []

    def stop(self, timeout=STOP_TIMEOUT_S):
        """SIGTERM to esbankd, wait; SIGKILL the whole group after timeout.
        Returns esbankd's exit status; children still alive afterwards are
        recorded in last_stop_leftovers (and killed)."""
        if self.proc is None:
            return None
        self._close_clients()
        kids = descendants(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            rc = "timeout"
            self._kill_all(kids)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and any(alive(k) for k in kids):
            time.sleep(0.05)
        self.last_stop_leftovers = [(k, cmdline(k)) for k in kids if alive(k)]
        self._kill_all(kids)
        self.proc = None
        self.last_stop_rc = rc
        return rc

    def kill9(self):
        """SIGKILL esbankd and all its children at once; waits for them.
        Returns the pids killed."""
        if self.proc is None:
            return []
        self._close_clients()
        kids = descendants(self.proc.pid)
        pid = self.proc.pid
        self._kill_all(kids)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None
        return [pid] + kids

    def _kill_all(self, kids):
        pids = ([self.proc.pid] if self.proc and self.proc.poll() is None else []) + list(kids)
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        if self.proc is not None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and any(alive(p) for p in kids):
            time.sleep(0.05)

    def restart(self):
        self.stop()
        self.start()

    def cleanup(self):
        if self.proc is not None:
            self.stop(timeout=5)
        shutil.rmtree(self._run_parent, ignore_errors=True)

    # -- mail --------------------------------------------------------------

    def mails(self):
        """[(path, message, decoded text)] of every message in the outbox."""
        out = []
        for d in (self.outbox, self.outbox.parent / "cur"):
            if not d.is_dir():
                continue
            for p in sorted(d.iterdir()):
                if p.name.startswith("."):
                    continue
                try:
                    raw = p.read_bytes()
                except OSError:
                    continue
                out.append((p,) + parse_mail(raw))
        return out

    def wait_mail(self, pred, timeout=MAIL_TIMEOUT_S, what="mail"):
        deadline = time.monotonic() + timeout
        while True:
            for item in self.mails():
                if pred(item):
                    return item
            if time.monotonic() > deadline:
                raise AssertionError("no %s in %s within %.0f s" % (what, self.outbox, timeout))
            time.sleep(0.05)

    def codes_for(self, account):
        """The verification code of every mail sent so far for account (a
        code mailed twice appears twice)."""
        found = []
        for _, _, text in self.mails():
            # one code per message, however often its text shows the link
            codes = {urllib.parse.unquote(c) for n, c in LINK_RE.findall(text) if n == account}
            assert len(codes) <= 1, "one mail with several codes: %r" % codes
            found.extend(codes)
        return found

    def wait_code(self, account, exclude=(), timeout=MAIL_TIMEOUT_S):
        """Waits for a verification mail for account with a code not in exclude."""
        deadline = time.monotonic() + timeout
        while True:
            for c in self.codes_for(account):
                if c not in exclude:
                    self.codes.add(c)
                    return c
            if time.monotonic() > deadline:
                raise AssertionError("no verification mail for %s (new code) within %.0f s"
                                     % (account, timeout))
            time.sleep(0.05)


def parse_mail(raw):
    """(message, text): the parsed RFC 5322 message and its decoded text parts
    (plus the raw text, so a link is found however the body is encoded)."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    texts = []
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            try:
                texts.append(part.get_content())
            except Exception:
                pass
    texts.append(raw.decode("utf-8", errors="replace"))
    return msg, "\n".join(texts)


# -- helpers for tests -----------------------------------------------------


_email_seq = iter(range(1, 1 << 30))


def new_email(tag="user"):
    return "%s%d-%s@example.com" % (tag, next(_email_seq), uuid.uuid4().hex[:8])


def new_password():
    return "pw-" + uuid.uuid4().hex


def expect_ok(reply):
    assert reply.get("ok") is True, "expected ok, got %r" % (reply,)
    return reply


def expect_err(reply, code):
    assert reply.get("ok") is False, "expected error %s, got %r" % (code, reply)
    assert reply.get("error") == code, "expected error %s, got %r" % (code, reply)
    msg = reply.get("message")
    assert isinstance(msg, str) and msg, "error reply without a message string: %r" % (reply,)
    return reply


def open_account(client, email_addr=None, password=None, key=None):
    """Opens an account; returns its number (the password is remembered)."""
    g = client.group
    email_addr = email_addr or new_email()
    password = password or new_password()
    g.passwords.add(password)
    r = expect_ok(client.open_account(email_addr, password, key=key))
    acct = r["account"]
    assert isinstance(acct, str) and re.fullmatch(r"[1-9][0-9]{15}", acct), r
    assert isinstance(r.get("seq"), int) and r["seq"] >= 1, r
    return acct


def open_verified(client, email_addr=None, password=None):
    """Opens an account and verifies it with the code from its mail."""
    acct = open_account(client, email_addr, password)
    code = client.group.wait_code(acct)
    expect_ok(client.verify_account(acct, code))
    return acct


# -- fixtures --------------------------------------------------------------


def _make_group(base, extra_args=()):
    g = Group(base, extra_args)
    _active_groups.append(g)
    return g


def _drop_group(g):
    try:
        g.cleanup()
    finally:
        if g in _active_groups:
            _active_groups.remove(g)


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    """A running group shared by the tests of one module."""
    g = _make_group(tmp_path_factory.mktemp("group"))
    g.start()
    yield g
    _drop_group(g)


@pytest.fixture
def client(group):
    c = group.client()
    yield c
    c.close()


@pytest.fixture
def fresh_group(tmp_path):
    """A group of the test's own; factory(extra_args) starts it."""
    made = []

    def factory(*extra_args, wait_peers=True):
        g = _make_group(tmp_path / ("g%d" % len(made)), extra_args)
        made.append(g)
        g.start(wait_peers=wait_peers)
        return g

    yield factory
    for g in made:
        _drop_group(g)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for g in _active_groups:
            rep.sections.append(("esbankd log (%s)" % g.log_path, g.log_tail()))
