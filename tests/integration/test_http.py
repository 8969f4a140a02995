"""Integration tests of esbank-http, the REST gateway (issue 5).

Two set-ups:
- the gateway alone (no bus): API routes answer 503, while /metrics, 404,
  405, 413 and bad HTTP work without the bus;
- the real group started by esbankd in a temporary directory, driven with the
  real curl binary: the whole user journey, every error, bad HTTP.

The build directory is $ESBANK_BUILD (default <repo>/build).
"""
import base64
import email
import email.policy
import hashlib
import hmac
import json
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import free_port  # noqa: F401 (other test files import it from here)

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("ESBANK_BUILD", REPO / "build"))
ESBANKD = BUILD / "supervisor" / "esbankd"
CLIENT = BUILD / "client" / "esbank"
GATEWAY = BUILD / "http" / "esbank-http"
START_TIMEOUT_S = 30
BODY_MAX = 64 * 1024
PASSWORD = "correct horse battery"


# ---------------------------------------------------------------- helpers


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.status} {self.body[:200]!r}>"


def curl(base, method, path, body=None, headers=(), token=None, raw_body=None):
    """One request with the real curl binary, as a JSON client (Accept:
    application/json unless headers name another); returns a Response."""
    args = ["curl", "-sS", "-X", method, "-D", "-", "--max-time", "30",
            "-H", "Expect:", "-w", "\n%{http_code}"]
    if not any(h.lower().startswith("accept:") for h in headers):
        args += ["-H", "Accept: application/json"]
    for h in headers:
        args += ["-H", h]
    if token:
        args += ["-H", f"Authorization: Bearer {token}"]
    data = raw_body if raw_body is not None else (
        json.dumps(body).encode() if body is not None else None)
    if data is not None:
        if not any(h.lower().startswith("content-type:") for h in headers):
            args += ["-H", "Content-Type: application/json"]
        args += ["--data-binary", "@-"]
    args.append(base + path)
    out = subprocess.run(args, input=data, capture_output=True, timeout=40, check=True).stdout
    head, _, rest = out.partition(b"\r\n\r\n")
    payload, _, code = rest.rpartition(b"\n")
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.decode().partition(":")
        headers[k.strip().lower()] = v.strip()
    return Response(int(code), headers, payload.decode())


def raw(port, data, timeout=3.0, shut=False):
    """Sends bytes on a fresh connection; returns what came back until close/timeout."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
            if shut:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        out = b""
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                out += b
        except (socket.timeout, ConnectionResetError):
            pass
        return out


def wait_for(pred, timeout=START_TIMEOUT_S, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            v = pred()
            if v:
                return v
        except Exception:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def need(*paths):
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        pytest.skip("not built: " + ", ".join(missing))


# ---------------------------------------------------------------- fixtures


class Group:
    def __init__(self, tmp):
        self.data = tmp / "data"
        self.run = tmp / "run"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.metrics_base = f"http://127.0.0.1:{free_port()}"
        self.log = open(tmp / "esbankd.log", "wb")
        # /metrics has its own listener (esbank-http --metrics, from the environment).
        env = {**os.environ, "ESBANK_HTTP_METRICS": self.metrics_base[len("http://"):]}
        self.proc = subprocess.Popen(
            [str(ESBANKD), "--data", str(self.data), "--run", str(self.run),
             "--http", f"127.0.0.1:{self.port}", "--pwhash-cost", "min"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def status(self):
        out = subprocess.run([str(CLIENT), "--run", str(self.run), "status", "--json"],
                             capture_output=True, timeout=10).stdout
        return json.loads(out)

    def wait_ready(self):
        wait_for(lambda: self.status().get("state") == "live", what="bus live")
        wait_for(lambda: "esbank_bus_connected 1" in self.metrics(),
                 what="gateway linked to the bus")

    def metrics(self):
        return curl(self.metrics_base, "GET", "/metrics").body

    def get(self, path, **kw):
        return curl(self.base, "GET", path, **kw)

    def post(self, path, body=None, **kw):
        return curl(self.base, "POST", path, body, **kw)


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    need(ESBANKD, CLIENT, GATEWAY)
    g = Group(tmp_path_factory.mktemp("group"))
    try:
        g.wait_ready()
        yield g
    finally:
        stop(g.proc)
        g.log.close()


@pytest.fixture
def alone(tmp_path):
    """esbank-http with no bus behind it."""
    need(GATEWAY)
    port = free_port()
    mport = free_port()
    (tmp_path / "run").mkdir()
    log = open(tmp_path / "http.log", "wb")
    proc = subprocess.Popen([str(GATEWAY), "--http", f"127.0.0.1:{port}",
                             "--metrics", f"127.0.0.1:{mport}",
                             "--data", str(tmp_path / "data"), "--run", str(tmp_path / "run")],
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    METRICS[base] = f"http://127.0.0.1:{mport}"
    try:
        wait_for(lambda: metrics(base).status == 200, what="gateway up")
        yield base, port, tmp_path, proc
    finally:
        stop(proc)
        log.close()
    text = (tmp_path / "http.log").read_text(errors="replace")
    assert "Sanitizer" not in text and "runtime error" not in text, text
    assert proc.returncode == 0, text


METRICS = {}  # a gateway's base URL -> its --metrics base URL


def metrics(base):
    return curl(METRICS[base], "GET", "/metrics")


def alone_token(tmp, account="1" * 16):
    """A valid token for account, made with the alone gateway's secret."""
    secret = (tmp / "data" / "http.secret").read_bytes()
    return make_token(secret, account, int(time.time()) + 600)


# ---------------------------------------------------------------- journey helpers


def verify_link(g, account, timeout=15):
    """The verification link mailed for account (parsed as RFC 5322)."""
    outbox = g.data / "mail" / "outbox"

    def find():
        for d in ("new", "cur"):
            for f in sorted((outbox / d).glob("*")) if (outbox / d).exists() else []:
                msg = email.message_from_bytes(f.read_bytes(), policy=email.policy.default)
                part = msg.get_body(preferencelist=("plain", "html")) or msg
                text = part.get_content()
                m = re.search(r"(https?://\S+/api/verify\?account(?:_number)?=(\d+)&code=[\w\-%.~=]+)",
                              text)
                if m and m.group(2) == account:
                    return m.group(1)
        return None
    return wait_for(find, timeout=timeout, what=f"verification mail for {account}")


def open_account(g, addr):
    r = g.post("/api/account", {"email": addr, "password": PASSWORD})
    assert r.status == 201 and r.headers["location"] == "/api/account", r
    acct = r.json()["account"]
    assert re.fullmatch(r"[1-9]\d{15}", acct) and r.json()["seq"] > 0
    return acct


def verify(g, acct):
    link = verify_link(g, acct)
    r = curl("", "GET", link)
    assert r.status == 200 and list(r.json()) == ["seq"], r


def login(g, acct):
    r = g.post("/api/login", {"account": acct, "password": PASSWORD})
    assert r.status == 200, r
    return r.json()["token"]


def balance(g, token):
    r = g.get("/api/account", token=token)
    assert r.status == 200, r
    return r.json()["balance"]


_n = [0]


def fresh_email(tag):
    _n[0] += 1
    return f"{tag}{_n[0]}.{os.getpid()}@Example.com"


def verified_account(g, tag):
    acct = open_account(g, fresh_email(tag))
    verify(g, acct)
    return acct, login(g, acct)


# ---------------------------------------------------------------- the gateway alone


def test_usage():
    need(GATEWAY)
    r = subprocess.run([str(GATEWAY), "--help"], capture_output=True, timeout=10)
    assert r.returncode == 0 and b"--http" in r.stdout and b"--token-ttl" in r.stdout
    r = subprocess.run([str(GATEWAY), "--bogus"], capture_output=True, timeout=10)
    assert r.returncode == 100
    r = subprocess.run([str(GATEWAY), "--http", "no-port", "--data", "/tmp", "--run", "/tmp"],
                       capture_output=True, timeout=10)
    assert r.returncode == 100


def test_alone_api_is_503_without_bus(alone):
    base, _, tmp, _ = alone
    r = curl(base, "POST", "/api/account", {"email": "a@b.cd", "password": PASSWORD})
    assert r.status == 503 and r.json()["error"] == "unavailable"
    assert curl(base, "GET", "/api/report/sum_transactions",
                token=alone_token(tmp)).status == 503
    assert curl(base, "GET", "/api/verify?account_number=1&code=x").status == 503
    assert curl(base, "GET", "/metrics").status == 404  # not on the public port
    m = metrics(base)
    assert m.status == 200 and m.headers["content-type"].startswith("text/plain")
    assert "esbank_bus_connected 0" in m.body and "esbank_bus_up 0" in m.body
    assert 'esbank_http_requests_total{route="/api/account",status="503"} 1' in m.body


def test_alone_routing_and_limits(alone):
    base, port, _, _ = alone
    r = curl(base, "GET", "/nope")
    assert r.status == 404 and r.json()["error"] == "no_route"
    r = curl(base, "PUT", "/api/account")
    assert r.status == 405 and set(r.headers["allow"].split(", ")) == {"GET", "POST", "DELETE"}
    r = curl(base, "POST", "/api/account", raw_body=b"{" + b" " * BODY_MAX + b"}")
    assert r.status == 413 and r.json()["error"] == "too_large"
    r = curl(base, "POST", "/api/account", raw_body=b'{"email": ')
    assert r.status == 400 and r.json()["error"] == "bad_request"
    r = curl(base, "POST", "/api/account", raw_body=b"email=a%40b.cd&password=x",
             headers=["Content-Type: application/x-www-form-urlencoded"])
    assert r.status == 415 and r.json()["error"] == "unsupported_media_type"
    r = curl(base, "POST", "/api/account", {"email": 5, "password": PASSWORD})
    assert r.status == 400 and "email" in r.json()["message"]
    r = curl(base, "GET", "/api/account")
    assert r.status == 401 and r.headers["www-authenticate"] == "Bearer"
    assert_bad_http_is_contained(port, base)


def test_alone_secret_is_kept(alone):
    base, _, tmp, proc = alone
    secret = tmp / "data" / "http.secret"
    assert secret.stat().st_size == 32 and (secret.stat().st_mode & 0o777) == 0o600
    before = secret.read_bytes()
    stop(proc)
    port = free_port()
    p2 = subprocess.Popen([str(GATEWAY), "--http", f"127.0.0.1:{port}", "--data",
                           str(tmp / "data"), "--run", str(tmp / "run")],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: curl(f"http://127.0.0.1:{port}", "GET", "/nope").status == 404,
                 what="restarted gateway")
        assert secret.read_bytes() == before
    finally:
        stop(p2)


def assert_bad_http_is_contained(port, base):
    """Garbage, oversized headers, short bodies: a 4xx or a close, and the gateway serves on."""
    out = raw(port, b"\x16\x03\x01garbage\r\n\r\n")
    assert out == b"" or out.startswith(b"HTTP/1.1 400")
    out = raw(port, b"GET /nope HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
    assert out == b"" or out.startswith(b"HTTP/1.1 431")
    out = raw(port, b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n")
    assert out == b"" or out.split(b" ")[1] in (b"414", b"431", b"400")
    out = raw(port, b"POST /api/login HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"a\":",
              shut=True)
    assert out == b"" or out.startswith(b"HTTP/1.1 4")
    chunk = b"8000\r\n" + b"a" * 0x8000 + b"\r\n"
    out = raw(port, b"POST /api/login HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 3)
    assert out == b"" or out.startswith(b"HTTP/1.1 413")
    # A client stopped halfway keeps its connection, and others are served meanwhile.
    with socket.create_connection(("127.0.0.1", port)) as stalled:
        stalled.sendall(b"POST /api/login HTTP/1.1\r\nContent-Length: 50\r\n\r\n{")
        started = time.time()
        assert curl(base, "GET", "/nope").status == 404
        assert time.time() - started < 2
    # Pipelined requests on one kept-alive connection are answered in order.
    out = raw(port, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                    b"GET /api/account HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    codes = re.findall(rb"HTTP/1\.1 (\d{3})", out)
    assert codes == [b"404", b"401"]
    assert curl(base, "GET", "/nope").status == 404


# ---------------------------------------------------------------- the real group


def test_journey(group):
    g = group
    alice = open_account(g, fresh_email("alice"))
    bob = open_account(g, fresh_email("bob"))
    tb = login(g, bob)  # an unverified account may log in and read reports
    sum_before = g.get("/api/report/sum_transactions", token=tb).json()["sum"]

    # Alice opens the link in a browser: a page with a button; the GET verifies nothing.
    link = verify_link(g, alice)
    assert link.startswith(g.base + "/api/verify?")
    r = curl("", "GET", link, headers=["Accept: text/html,application/xhtml+xml"])
    assert r.status == 200 and r.headers["content-type"].startswith("text/html")
    assert '<form method="post"' in r.body and "<script" not in r.body
    form = "account=%s&code=%s" % (alice, re.search(r"code=([^&\s]+)", link).group(1))
    html_form = ["Content-Type: application/x-www-form-urlencoded"]
    r = curl(g.base, "POST", "/api/verify", raw_body=form.encode(), headers=html_form)
    assert r.status == 200 and "Your account is verified" in r.body, r
    r = curl(g.base, "POST", "/api/verify", raw_body=form.encode(), headers=html_form)
    assert r.status == 409 and "already verified" in r.body, r  # the second click, in words
    r = curl("", "GET", link)  # a JSON client
    assert (r.status, r.json()["error"]) == (409, "already_verified")
    verify(g, bob)

    ta = login(g, alice)
    acct = g.get("/api/account", token=ta).json()
    assert acct["account"] == alice and acct["balance"] == 100000
    assert acct["verified"] is True and acct["email"] == acct["email"].lower()
    assert acct["last_activity"] is None
    opened = datetime.fromisoformat(acct["opened_at"].replace("Z", "+00:00"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", acct["opened_at"])
    ms = g.get("/api/account?times=ms", token=ta).json()["opened_at"]
    assert ms == int(opened.timestamp() * 1000)

    key = [f"Idempotency-Key: journey-{os.getpid()}-{time.time()}"]
    move = {"to": bob, "amount": 2500}
    r = g.post("/api/money_transfer", move, token=ta, headers=key)
    assert r.status == 200 and r.json()["balance"] == 100000 - 2500, r
    first = r.json()
    r = g.post("/api/money_transfer", move, token=ta, headers=key)  # a retry: no new event
    assert (r.status, r.json()) == (200, first), r
    r = g.post("/api/money_transfer", {**move, "amount": 7}, token=ta, headers=key)
    assert (r.status, r.json()["error"]) == (409, "key_conflict")
    r = g.post("/api/withdraw", {"amount": 1000}, token=ta)
    assert r.status == 200 and r.json()["balance"] == 100000 - 3500, r
    assert r.json()["seq"] > first["seq"]

    assert balance(g, ta) == 100000 - 2500 - 1000
    assert balance(g, tb) == 100000 + 2500
    last = g.get("/api/account", token=ta).json()["last_activity"]
    assert datetime.fromisoformat(last.replace("Z", "+00:00")) >= opened

    assert g.get("/api/report/sum_transactions").status == 401  # reports need a token
    assert g.get("/api/report/sum_transactions", token=tb).json()["sum"] - sum_before == 3500
    today = datetime.now(timezone.utc)
    r = g.get(f"/api/report/sum_transactions?year={today.year}&month={today.month}"
              f"&day={today.day}", token=tb)
    assert r.status == 200 and r.json()["sum"] >= 3500
    r = g.get("/api/report/sum_transactions?year=1999", token=tb)
    assert (r.status, r.json()) == (200, {"sum": 0})

    assert g.get("/api/report/inactive_users").status == 401
    inactive = g.get("/api/report/inactive_users", token=tb)
    assert inactive.status == 200 and isinstance(inactive.json()["total"], int)
    open_account(g, fresh_email("idle"))
    after = g.get("/api/report/inactive_users", token=tb).json()["total"]
    assert after == inactive.json()["total"] + 1

    assert g.get("/metrics").status == 404  # only on the --metrics address
    m = g.metrics()
    assert 'esbank_http_requests_total{route="/api/login",status="200"}' in m
    assert 'esbank_bus_state{state="live"} 1' in m
    last_seq = int(re.search(r"^esbank_bus_last_seq (\d+)$", m, re.M).group(1))
    assert last_seq >= 7  # 3 opened, 2 verified, 1 transfer, 1 withdrawal
    assert "esbank_http_request_duration_seconds_count" in m


def test_rejections_carry_protocol_codes(group):
    g = group
    acct, tok = verified_account(g, "rej")
    other, _ = verified_account(g, "rej")
    cases = [
        ("/api/withdraw", {"amount": 10**8}, 422, "insufficient_funds"),
        ("/api/withdraw", {"amount": 0}, 422, "invalid_amount"),
        ("/api/money_transfer", {"to": acct, "amount": 5}, 422, "same_account"),
        ("/api/money_transfer", {"to": "1234567890123456", "amount": 5}, 404, "not_found"),
        ("/api/money_transfer", {"to": other, "amount": -5}, 422, "invalid_amount"),
        # The older name of the field is still read.
        ("/api/money_transfer", {"to_account_number": acct, "amount": 5}, 422, "same_account"),
    ]
    for path, body, status, code in cases:
        r = g.post(path, body, token=tok)
        assert (r.status, r.json()["error"]) == (status, code), (path, body, r)
        assert r.json()["message"]
    # Wrong JSON types are the gateway's own 400.
    for body in ({"amount": "10"}, {"amount": 1.5}, {"amount": None}, [1], "x"):
        r = g.post("/api/withdraw", body, token=tok)
        assert (r.status, r.json()["error"]) == (400, "bad_request"), (body, r)
    r = g.post("/api/withdraw", raw_body=b"{not json", token=tok)
    assert (r.status, r.json()["error"]) == (400, "bad_request")
    r = g.post("/api/account", {"email": "no-at-sign", "password": PASSWORD})
    assert (r.status, r.json()["error"]) == (400, "bad_request")
    r = g.get("/api/verify?account_number=" + acct + "&code=wrong")
    assert (r.status, r.json()["error"]) == (409, "already_verified")
    r = g.post("/api/account", {"email": g.get("/api/account", token=tok).json()["email"],
                                "password": PASSWORD})
    assert (r.status, r.json()["error"]) == (409, "already_exists")
    # Not verified yet: money cannot move.
    fresh = open_account(g, fresh_email("unverified"))
    tf = login(g, fresh)
    r = g.post("/api/withdraw", {"amount": 5}, token=tf)
    assert (r.status, r.json()["error"]) == (422, "not_verified")
    r = g.get(f"/api/verify?account={fresh}&code=wrong")
    assert (r.status, r.json()["error"]) == (422, "wrong_code")
    assert balance(g, tok) == 100000


def test_errors_401_404_405_413(group):
    g = group
    acct, tok = verified_account(g, "err")
    assert g.get("/api/account").status == 401
    assert g.post("/api/withdraw", {"amount": 1}).status == 401
    forged = tok[:-2] + ("AA" if not tok.endswith("AA") else "BB")
    assert g.get("/api/account", token=forged).status == 401
    other_acct = tok.replace(acct, "1" * 16)
    assert g.get("/api/account", token=other_acct).status == 401
    assert g.get("/api/account", headers=[f"Authorization: Basic {tok}"]).status == 401
    assert g.get("/api/nothing").status == 404
    assert g.get("/api/account/").status == 404
    r = curl(g.base, "PUT", "/api/login")
    assert r.status == 405 and r.headers["allow"] == "POST"
    assert curl(g.base, "POST", "/api/report/inactive_users").status == 405
    r = g.post("/api/withdraw", raw_body=b'{"amount":1,"pad":"' + b"x" * BODY_MAX + b'"}',
               token=tok)
    assert r.status == 413
    assert balance(g, tok) == 100000


def make_token(secret, account, expiry):
    signed = f"v1.{account}.{expiry}".encode()
    mac = hmac.new(secret, signed, hashlib.sha512).digest()[:32]
    return signed.decode() + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def test_tokens_are_signed_and_expire(group):
    g = group
    acct, tok = verified_account(g, "tok")
    secret = (g.data / "http.secret").read_bytes()
    assert (g.data / "http.secret").stat().st_mode & 0o777 == 0o600
    _, _, expiry, _ = tok.split(".")
    assert 3500 <= int(expiry) - time.time() <= 3700  # the default 1 hour
    # A token made with the secret works; an expired one or one with another key does not.
    assert balance(g, make_token(secret, acct, int(time.time()) + 60)) == 100000
    r = g.get("/api/account", token=make_token(secret, acct, int(time.time()) - 1))
    assert r.status == 401 and "expired" in r.json()["message"]
    r = g.get("/api/account", token=make_token(b"k" * 32, acct, int(time.time()) + 60))
    assert r.status == 401


def test_failed_logins_are_rate_limited(group):
    g = group
    acct, _ = verified_account(g, "limit")
    for _ in range(5):
        r = g.post("/api/login", {"account_number": acct, "password": "wrong password"})
        assert (r.status, r.json()["error"]) == (401, "auth_failed")
    r = g.post("/api/login", {"account_number": acct, "password": "wrong password"})
    assert (r.status, r.json()["error"]) == (429, "rate_limited")
    assert int(r.headers["retry-after"]) > 0
    r = g.post("/api/login", {"account_number": acct, "password": PASSWORD})
    assert r.status == 429  # even the right password waits
    # Other accounts from the same address are not locked out by this one.
    other, _ = verified_account(g, "limit")
    r = g.post("/api/login", {"account_number": "9" * 16, "password": "wrong password"})
    assert (r.status, r.json()["error"]) == (401, "auth_failed")


def test_keep_alive(group):
    g = group
    out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-o", "/dev/null", "-w",
                          "%{num_connects} ", g.base + "/api/openapi.json", g.base + "/nope"],
                         capture_output=True, timeout=20, check=True).stdout.split()
    assert out == [b"1", b"0"]  # the second request reused the connection


def test_bad_http_never_stops_the_gateway(group):
    g = group
    assert_bad_http_is_contained(g.port, g.base)
    _, tok = verified_account(g, "badhttp")
    r = g.get("/api/report/inactive_users", token=tok)
    assert r.status == 200 and "total" in r.json()



class FakeBus:
    """A stand-in for bus.sock: answers every request ok, or drops the link on request."""

    def __init__(self, path):
        self.msgpack = pytest.importorskip("msgpack")
        self.path = str(path)
        self.requests = []
        self.drop_on_op = None
        self.conns = []
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(self.path)
        self.listener.listen(4)
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                c, _ = self.listener.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        buf = b""
        while True:
            try:
                data = c.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            while len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">I", buf[:4])[0]:
                n = struct.unpack(">I", buf[:4])[0]
                req = self.msgpack.unpackb(buf[4:4 + n])
                buf = buf[4 + n:]
                self.requests.append(req)
                if req.get("op") == self.drop_on_op:
                    c.close()
                    return
                reply = self.msgpack.packb({"id": req["id"], "ok": True, "total": 3,
                                            "state": "live", "last_seq": 5, "durable_seq": 5})
                c.sendall(struct.pack(">I", len(reply)) + reply)

    def stop(self):
        self.listener.close()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass
        os.unlink(self.path)


def test_link_loss_is_503_then_relinks(alone):
    base, _, tmp, _ = alone
    tok = alone_token(tmp)
    bus = FakeBus(tmp / "run" / "bus.sock")
    try:
        wait_for(lambda: curl(base, "GET", "/api/report/inactive_users", token=tok).status == 200,
                 what="gateway linked to the fake bus")
        req = bus.requests[-1]
        assert req["op"] == "inactive_users" and isinstance(req["id"], int) and req["id"] > 0
        m = metrics(base).body
        assert "esbank_bus_connected 1" in m and "esbank_bus_last_seq 5" in m
        # A request in flight when the link drops is answered 503 at once.
        bus.drop_on_op = "sum_transactions"
        r = curl(base, "GET", "/api/report/sum_transactions?year=2024", token=tok)
        assert (r.status, r.json()["error"]) == (503, "unavailable")
        assert bus.requests[-1] == {"op": "sum_transactions", "id": bus.requests[-1]["id"],
                                    "year": 2024}
        bus.drop_on_op = None
        # No bus at all: 503; a new bus: the gateway relinks by itself.
        bus.stop()
        wait_for(lambda: curl(base, "GET", "/api/report/inactive_users", token=tok).status == 503,
                 what="503 without a bus")
        bus = FakeBus(tmp / "run" / "bus.sock")
        wait_for(lambda: curl(base, "GET", "/api/report/inactive_users", token=tok).status == 200,
                 what="relinked")
        ids = [q["id"] for q in bus.requests]
        assert len(set(ids)) == len(ids)
    finally:
        bus.stop()


@pytest.mark.parametrize("accept", [None, "*/*", "text/html", "application/json, text/html"])
def test_a_mail_scanner_opening_the_link_verifies_nothing(group, accept):
    """Scanners pre-open links with no Accept, */* or like a browser: each
    gets the page, and the account stays unverified until a POST; only a
    client asking for JSON alone verifies by GET."""
    g = group
    acct = open_account(g, fresh_email("scanner"))
    link = verify_link(g, acct)
    args = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{content_type}",
            "-H", "Accept:" if accept is None else "Accept: " + accept, link]
    out = subprocess.run(args, capture_output=True, text=True, timeout=30, check=True).stdout
    assert out.startswith("200 text/html"), out
    tok = login(g, acct)
    assert g.get("/api/account", token=tok).json()["verified"] is False
    r = curl("", "GET", link)  # Accept: application/json
    assert r.status == 200 and isinstance(r.json()["seq"], int), r
    assert g.get("/api/account", token=tok).json()["verified"] is True
