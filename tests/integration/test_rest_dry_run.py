"""Dry runs in REST (issue 16, item 3): ?dry_run=1 or Prefer: dry-run on a
command route sends the command with "dry_run": true (docs/protocol.md "Dry
runs"; http/routes.c).

test_every_command_route_dry_then_real: POST /api/account, POST and GET
/api/verify (JSON), POST /api/money_transfer, POST /api/withdraw, successes
and errors, each as a dry run by query and by Prefer: the head hash, last
seq, balances and the outbox stay as they were; the answer is the status and
body the real call then gets, with "dry_run": true; Preference-Applied:
dry-run answers Prefer only; a dry open has no Location; an
Idempotency-Key is not used up by a dry run.

test_bad_and_ignored: dry_run=2 on a command is 400 and changes nothing;
dry_run=0/false are real calls; Prefer naming another preference
("dry-runner") is a real call; a Prefer too long to read is 400; the
verification form with dry_run is 400; queries (GET /api/account, reports)
ignore dry_run=2 and Prefer: dry-run.
"""
from urllib.parse import parse_qs, urlparse

from test_http import (PASSWORD, curl, fresh_email, group, login,  # noqa: F401
                       verify_link)


def mail_count(g):
    box = g.data / "mail" / "outbox"
    return sum(len(list((box / d).glob("*"))) for d in ("new", "cur") if (box / d).is_dir())


def state(g, tokens):
    s = g.status()
    bals = [curl(g.base, "GET", "/api/account", token=t).json()["balance"] for t in tokens]
    return s["last_seq"], s["head_hash"], bals, mail_count(g)


def with_dry(path, how):
    if how == "query":
        return path + ("&" if "?" in path else "?") + "dry_run=1", []
    return path, ["Prefer: respond-async, dry-run"]


def check(g, method, path, body, tokens, how, token=None, headers=(), ignore=("message",)):
    """A dry run of the call, then the real one: nothing changed, same answer."""
    before = state(g, tokens)
    dpath, extra = with_dry(path, how)
    d = curl(g.base, method, dpath, body, headers=list(headers) + extra, token=token)
    assert state(g, tokens) == before, (path, body, d)
    dj = d.json()
    assert dj.pop("dry_run") is True, d
    if how == "prefer":
        assert d.headers.get("preference-applied") == "dry-run", d.headers
    else:
        assert "preference-applied" not in d.headers, d.headers
    r = curl(g.base, method, path, body, headers=list(headers), token=token)
    rj = r.json()
    assert "preference-applied" not in r.headers and "dry_run" not in rj, r
    assert d.status == r.status, (d, r)
    for k in ignore:
        dj.pop(k, None)
        rj.pop(k, None)
    assert dj == rj, (d, r)
    return d, r


def test_every_command_route_dry_then_real(group):
    g = group
    for how in ("query", "prefer"):
        # POST /api/account: 201 (a fresh number, no Location), then 409
        email = fresh_email("dryrest")
        body = {"email": email, "password": PASSWORD}
        d, r = check(g, "POST", "/api/account", body, [], how, ignore=("message", "account"))
        assert d.status == 201 and "location" not in d.headers, d
        assert r.headers["location"] == "/api/account"
        acct = r.json()["account"]
        assert len(d.json()["account"]) == 16 and d.json()["account"] != acct
        link = verify_link(g, acct)  # the real open's mail, before the next snapshot
        code = parse_qs(urlparse(link).query)["code"][0]
        check(g, "POST", "/api/account", body, [], how)  # 409 already_exists
        # transfer to the unverified account, and its withdraw: 422 not_verified
        other, tok = open_verified(g)
        d, r = check(g, "POST", "/api/money_transfer", {"to": acct, "amount": 5}, [tok], how,
                     token=tok)
        assert r.status == 422 and r.json()["error"] == "not_verified", r
        # verify: a wrong code (422), then the right one by POST, then GET (409)
        wrong = "A" * 32 if code != "A" * 32 else "B" * 32
        d, r = check(g, "POST", "/api/verify", {"account": acct, "code": wrong}, [], how)
        assert r.status == 422 and r.json()["error"] == "wrong_code", r
        if how == "query":
            d, r = check(g, "POST", "/api/verify", {"account": acct, "code": code}, [], how)
        else:
            d, r = check(g, "GET", f"/api/verify?account={acct}&code={code}", None, [], how)
        assert d.status == 200 and r.status == 200, (d, r)
        check(g, "GET", f"/api/verify?account={acct}&code={code}", None, [], how)  # 409
        tok2 = login(g, acct)
        toks = [tok, tok2]
        # transfer: ok (200), insufficient_funds, same_account, invalid_amount
        for amount, to in ((250, acct), (10**9, acct), (1, other), (0, acct)):
            check(g, "POST", "/api/money_transfer", {"to": to, "amount": amount}, toks, how,
                  token=tok)
        # withdraw: ok, insufficient_funds, invalid_amount
        for amount in (100, 10**9, -1):
            check(g, "POST", "/api/withdraw", {"amount": amount}, toks, how, token=tok2)
        # a dry run does not use up the key: the real call with it is new
        key = ["Idempotency-Key: dry-" + how]
        d, r = check(g, "POST", "/api/withdraw", {"amount": 7}, toks, how, token=tok2,
                     headers=key)
        assert r.status == 200
        # a used key: the dry run answers the original reply
        before = state(g, toks)
        again = curl(g.base, "POST", with_dry("/api/withdraw", how)[0], {"amount": 7},
                     headers=key + with_dry("", how)[1], token=tok2)
        assert state(g, toks) == before
        assert again.status == 200 and again.json() == dict(r.json(), dry_run=True), again


def open_verified(g):
    r = curl(g.base, "POST", "/api/account", {"email": fresh_email("dryrest"),
                                               "password": PASSWORD})
    acct = r.json()["account"]
    link = verify_link(g, acct)
    assert curl("", "GET", link).status == 200
    return acct, login(g, acct)


def test_bad_and_ignored(group):
    g = group
    acct, tok = open_verified(g)
    other, _ = open_verified(g)
    toks = [tok]
    before = state(g, toks)
    for path in ("/api/money_transfer?dry_run=2", "/api/money_transfer?dry_run=",
                 "/api/money_transfer?dry_run=yes"):
        r = curl(g.base, "POST", path, {"to": other, "amount": 1}, token=tok)
        assert r.status == 400 and r.json()["error"] == "bad_request", r
    r = curl(g.base, "POST", "/api/withdraw", {"amount": 1}, token=tok,
             headers=["Prefer: " + "x" * 600 + ", dry-run"])
    assert r.status == 400 and r.json()["error"] == "bad_request", r
    r = curl(g.base, "POST", "/api/verify?dry_run=1", raw_body=f"account={acct}&code=x".encode(),
             headers=["Content-Type: application/x-www-form-urlencoded"])
    assert r.status == 400 and "dry run" in r.json()["message"], r
    assert state(g, toks) == before
    # dry_run=0, dry_run=false and an unknown preference are real calls
    bal = before[2][0]
    for path, hdr in (("/api/withdraw?dry_run=0", []), ("/api/withdraw?dry_run=false", []),
                      ("/api/withdraw", ["Prefer: dry-runner"])):
        r = curl(g.base, "POST", path, {"amount": 1}, token=tok, headers=hdr)
        assert r.status == 200 and "dry_run" not in r.json(), r
        assert "preference-applied" not in r.headers
        bal -= 1
        assert r.json()["balance"] == bal
    # queries ignore dry_run and Prefer
    for path in ("/api/account?dry_run=2", "/api/report/sum_transactions?dry_run=1",
                 "/api/report/inactive_users?dry_run=x"):
        r = curl(g.base, "GET", path, token=tok, headers=["Prefer: dry-run"])
        assert r.status == 200 and "dry_run" not in r.json(), r
        assert "preference-applied" not in r.headers
