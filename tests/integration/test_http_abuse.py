"""esbank-http against abuse (issue 11, items 11-13): the login limits under
concurrency and behind a shared address, and Idempotency-Keys scoped to the
user who sends them.

The real group (conftest.Group) with its gateway on a free port. Each test
speaks HTTP from its own loopback source addresses (127.0.0.x: Linux routes
all of 127/8 to lo), so the per-address counts of one test do not leak into
another, and "another address" is a real other TCP peer.
"""
import http.client
import json
import socket
import time

import pytest

from conftest import _drop_group, _make_group, free_port, open_verified

PW = "correct horse battery"
WRONG = "wrong password"
PAIR_MAX = 5        # LOGIN_FAILS_PER_PAIR_MAX (http/login.h)
ACCOUNT_MAX = 10    # LOGIN_FAILS_PER_ACCOUNT_MAX
ADDR_MAX = 100      # LOGIN_FAILS_PER_ADDR_MAX
PARALLEL = 40


class Http:
    """The gateway of a group, reached from chosen loopback addresses."""

    def __init__(self, port):
        self.port = port

    def call(self, method, path, body=None, token=None, headers=None, src="127.0.0.1"):
        """One request on a fresh connection from src; returns (status, headers, json)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30,
                                       source_address=(src, 0))
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        data = json.dumps(body).encode() if body is not None else None
        if data is not None:
            h["Content-Type"] = "application/json"
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            text = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, json.loads(text)
        finally:
            c.close()

    def login(self, acct, password, src="127.0.0.1"):
        return self.call("POST", "/api/login", {"account": acct, "password": password},
                         src=src)

    def token(self, acct, src="127.0.0.1"):
        status, _, j = self.login(acct, PW, src)
        assert status == 200, j
        return j["token"]

    def balance(self, token):
        status, _, j = self.call("GET", "/api/account", token=token)
        assert status == 200, j
        return j["balance"]


def login_bytes(acct, password):
    body = json.dumps({"account_number": acct, "password": password}).encode()
    return (b"POST /api/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


def read_response(s):
    """(status, headers, json body) of the one response on s."""
    r = http.client.HTTPResponse(s)
    r.begin()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, json.loads(r.read())


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    port = free_port()
    g = _make_group(tmp_path_factory.mktemp("abuse"), ["--http", "127.0.0.1:%d" % port])
    g.start()
    h = Http(port)
    deadline = time.monotonic() + 15
    while True:
        try:
            # A malformed email is the bank's 400 once the gateway is linked (503 before).
            if h.call("POST", "/api/account", {"email": "x", "password": PW})[0] == 400:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the gateway did not link to the bus"
        time.sleep(0.1)
    h.group = g
    h.client = g.client()
    yield h
    h.client.close()
    _drop_group(g)


def account(gw):
    return open_verified(gw.client, password=PW)


# ---------------------------------------------------------------- item 11


def test_parallel_wrong_logins_are_limited_when_they_start(gw):
    """PARALLEL wrong-password logins of one account at the same moment: only
    PAIR_MAX reach the bank (401), the rest get 429 with Retry-After at once."""
    acct = account(gw)
    src = "127.0.0.11"
    req = login_bytes(acct, WRONG)
    socks = []
    for _ in range(PARALLEL):
        s = socket.create_connection(("127.0.0.1", gw.port), timeout=30,
                                     source_address=(src, 0))
        s.sendall(req[:-1])
        socks.append(s)
    time.sleep(0.2)  # every request but its last byte is in the gateway
    started = time.monotonic()
    for s in socks:
        s.sendall(req[-1:])
    answers = []
    for s in socks:
        answers.append(read_response(s))
        s.close()
    statuses = [a[0] for a in answers]
    assert statuses.count(401) == PAIR_MAX, statuses
    assert statuses.count(429) == PARALLEL - PAIR_MAX, statuses
    for status, headers, body in answers:
        if status == 429:
            assert body["error"] == "rate_limited" and int(headers["retry-after"]) >= 1
        else:
            assert body["error"] == "auth_failed"
    assert time.monotonic() - started < 5
    # From that address even the right password now waits ...
    status, headers, body = gw.login(acct, PW, src)
    assert (status, body["error"]) == (429, "rate_limited"), body
    assert int(headers["retry-after"]) > 60
    # ... while the owner at another address still logs in.
    assert gw.login(acct, PW, "127.0.0.12")[0] == 200


# ---------------------------------------------------------------- item 12


def test_failures_behind_one_address_lock_only_what_they_attacked(gw):
    attacked, other = account(gw), account(gw)
    proxy = "127.0.0.21"
    for _ in range(PAIR_MAX):
        assert gw.login(attacked, WRONG, proxy)[0] == 401
    # More bad logins from the same address, across other accounts.
    for i in range(20):
        status, _, body = gw.login("4%015d" % (i + 1000), WRONG, proxy)
        assert (status, body["error"]) == (401, "auth_failed"), (i, body)
    # Another customer behind the same address logs in with the right password.
    status, _, body = gw.login(other, PW, proxy)
    assert status == 200 and body["token"], body
    # The attacked account is still protected from that address, even with
    # the right password, but not locked for its owner elsewhere.
    assert gw.login(attacked, PW, proxy)[0] == 429
    assert gw.login(attacked, PW, "127.0.0.22")[0] == 200
    # Guessing spread over addresses locks the account itself, for everyone.
    for i in range(ACCOUNT_MAX):
        assert gw.login(attacked, WRONG, "127.0.0.%d" % (23 + i // PAIR_MAX))[0] == 401
    status, headers, body = gw.login(attacked, PW, "127.0.0.29")
    assert (status, body["error"]) == (429, "rate_limited")
    assert int(headers["retry-after"]) > 60
    assert gw.login(other, PW, "127.0.0.29")[0] == 200


def test_an_address_with_many_failures_is_paced_not_locked(gw):
    acct = account(gw)
    src = "127.0.0.31"
    for i in range(ADDR_MAX):
        status, _, body = gw.login("5%015d" % i, WRONG, src)
        assert status == 401, (i, body)
    # Paced: one attempt per second from that address ...
    time.sleep(1.1)
    assert gw.login("5%015d" % ADDR_MAX, WRONG, src)[0] == 401
    status, headers, body = gw.login(acct, PW, src)
    assert (status, body["error"]) == (429, "rate_limited")
    assert int(headers["retry-after"]) == 1
    # ... and the right password gets through once the second is over.
    time.sleep(1.1)
    assert gw.login(acct, PW, src)[0] == 200
    assert gw.login(acct, PW, "127.0.0.32")[0] == 200  # other addresses are not paced


# ---------------------------------------------------------------- item 13


def transfer(gw, token, to, amount, key):
    """(200, "ok") for a transfer done (its body, seq and balance, checked), else (status, body)."""
    status, _, body = gw.call("POST", "/api/money_transfer",
                              {"to": to, "amount": amount}, token=token,
                              headers={"Idempotency-Key": key})
    if status == 200:
        assert set(body) == {"seq", "balance"}, body
        return status, "ok"
    return status, body


def test_idempotency_keys_belong_to_their_user(gw):
    a, b, c = account(gw), account(gw), account(gw)
    ta, tb, tc = gw.token(a), gw.token(b), gw.token(c)
    assert transfer(gw, ta, c, 100, "order-1") == (200, "ok")
    # B uses the same key for his own transfer: his own, not A's.
    assert transfer(gw, tb, c, 250, "order-1") == (200, "ok")
    # Each replay by the same user is that user's original result, no new event.
    assert transfer(gw, ta, c, 100, "order-1") == (200, "ok")
    assert transfer(gw, tb, c, 250, "order-1") == (200, "ok")
    status, body = transfer(gw, ta, c, 7, "order-1")
    assert (status, body["error"]) == (409, "key_conflict")
    status, body = transfer(gw, tb, c, 100, "order-1")
    assert (status, body["error"]) == (409, "key_conflict")
    assert gw.balance(ta) == 100000 - 100
    assert gw.balance(tb) == 100000 - 250
    assert gw.balance(tc) == 100000 + 350
    # The key the bank keeps is A's key within A's account.
    keys = [e.get("key") for e in events(gw) if e.get("type") == "money_transferred"]
    assert "%s/order-1" % a in keys and "%s/order-1" % b in keys
    assert "order-1" not in keys


def test_long_and_bad_idempotency_keys(gw):
    a, b = account(gw), account(gw)
    ta, tb = gw.token(a), gw.token(b)
    long_key = "k" * 64  # too long to send with the account: hashed
    assert transfer(gw, ta, b, 10, long_key) == (200, "ok")
    assert transfer(gw, tb, a, 20, long_key) == (200, "ok")
    assert transfer(gw, ta, b, 10, long_key) == (200, "ok")
    assert transfer(gw, ta, b, 11, long_key)[1]["error"] == "key_conflict"
    assert gw.balance(ta) == 100000 - 10 + 20
    for bad in ("", "k" * 65):
        status, body = transfer(gw, ta, b, 10, bad)
        assert (status, body["error"]) == (400, "bad_request"), body
    assert gw.balance(ta) == 100000 - 10 + 20


def test_open_account_keys_are_scoped_to_the_email(gw):
    key = {"Idempotency-Key": "signup-1"}
    first = gw.call("POST", "/api/account", {"email": "one@example.com", "password": PW},
                    headers=key)
    assert first[0] == 201, first
    second = gw.call("POST", "/api/account", {"email": "two@example.com", "password": PW},
                     headers=key)
    assert second[0] == 201, second
    assert second[2]["account"] != first[2]["account"]
    again = gw.call("POST", "/api/account", {"email": "ONE@example.com", "password": PW},
                    headers=key)
    assert again[0] == 201 and again[2] == first[2]


def events(gw):
    """Every event in the log, through the bus's events query."""
    r = gw.client.call("events", {"from": 1, "limit": 10000})
    assert r.get("ok"), r
    return r["events"]
