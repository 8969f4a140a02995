"""POST /api/money_transfers (issue 15, item 1; http/bulkroute.c): bulk
transfers from the logged-in account through the real gateway, with curl.

test_bulk_results_in_order: each item answered as a single transfer would
be, in order (ok with seq and the sender's running balance; errors with
their codes), the balances and the log agree, and a retried item key gives
the original result without a second transfer.

test_atomic_refusal_changes_nothing: atomic with a failing item answers that
item's status with its code and index, and nothing is logged.

test_bad_requests: a missing or empty list, too many items, a malformed item,
an Idempotency-Key header, no token, a dry run: each 4xx, and nothing is
logged.
"""
from test_http import balance, curl, fresh_email, group, verified_account  # noqa: F401


def post(g, body, token, headers=()):
    return curl(g.base, "POST", "/api/money_transfers", body, token=token, headers=headers)


def test_bulk_results_in_order(group):
    g = group
    a, ta = verified_account(g, "bulkrest")
    b, tb = verified_account(g, "bulkrest")
    start_a, start_b = balance(g, ta), balance(g, tb)
    items = [{"to": b, "amount": 100, "key": "pay-1"},
             {"to": b, "amount": 10**12},             # insufficient_funds
             {"to": a, "amount": 5},                   # same_account
             {"to": "9" * 16, "amount": 5},            # not_found
             {"to": b, "amount": 0},                   # invalid_amount
             {"to": b, "amount": 250}]
    r = post(g, {"transfers": items}, ta)
    assert r.status == 200, r
    res = r.json()["results"]
    assert [x["ok"] for x in res] == [True, False, False, False, False, True], res
    assert [x.get("error") for x in res[1:5]] == ["insufficient_funds", "same_account",
                                                 "not_found", "invalid_amount"], res
    assert res[0]["balance"] == start_a - 100 and res[5]["balance"] == start_a - 350, res
    assert res[5]["seq"] == res[0]["seq"] + 1, res
    assert balance(g, ta) == start_a - 350 and balance(g, tb) == start_b + 350
    seq = g.status()["last_seq"]
    again = post(g, {"transfers": [{"to": b, "amount": 100, "key": "pay-1"}]}, ta)
    assert again.status == 200 and again.json()["results"] == [res[0]], again
    conflict = post(g, {"transfers": [{"to": b, "amount": 101, "key": "pay-1"}]}, ta)
    assert conflict.json()["results"][0]["error"] == "key_conflict", conflict
    assert g.status()["last_seq"] == seq and balance(g, ta) == start_a - 350
    # The same key from another user is that user's own key.
    mine = post(g, {"transfers": [{"to": a, "amount": 100, "key": "pay-1"}]}, tb)
    assert mine.json()["results"][0]["ok"] is True, mine


def test_atomic_refusal_changes_nothing(group):
    g = group
    a, ta = verified_account(g, "bulkrest")
    b, _ = verified_account(g, "bulkrest")
    before = g.status()["head_hash"], balance(g, ta)
    r = post(g, {"transfers": [{"to": b, "amount": 1}, {"to": b, "amount": 10**12}],
                 "atomic": True}, ta)
    assert r.status == 422, r
    assert r.json()["error"] == "insufficient_funds" and r.json()["index"] == 1, r
    assert (g.status()["head_hash"], balance(g, ta)) == before
    r = post(g, {"transfers": [{"to": b, "amount": 1}, {"to": "9" * 16, "amount": 1}],
                 "atomic": True}, ta)
    assert r.status == 404 and r.json()["index"] == 1, r
    ok = post(g, {"transfers": [{"to": b, "amount": 1}, {"to": b, "amount": 2}],
                  "atomic": True}, ta)
    assert ok.status == 200 and all(x["ok"] for x in ok.json()["results"]), ok
    assert balance(g, ta) == before[1] - 3


def test_bad_requests(group):
    g = group
    a, ta = verified_account(g, "bulkrest")
    b, _ = verified_account(g, "bulkrest")
    head = g.status()["head_hash"]
    one = [{"to": b, "amount": 1}]
    cases = [({}, ta, ()), ({"transfers": []}, ta, ()), ({"transfers": "x"}, ta, ()),
             ({"transfers": [{"to": b}]}, ta, ()), ({"transfers": [{"to": 5, "amount": 1}]}, ta, ()),
             ({"transfers": one + [7]}, ta, ()),
             ({"transfers": [{"to": b, "amount": 1, "key": ""}]}, ta, ()),
             ({"transfers": [{"to": b, "amount": 1, "key": "k" * 65}]}, ta, ()),
             ({"transfers": one, "atomic": "yes"}, ta, ()),
             ({"transfers": [{"to": b, "amount": 1}] * 8193}, ta, ()),
             ({"transfers": one}, ta, ["Idempotency-Key: k1"])]
    for body, tok, hdrs in cases:
        r = post(g, body, tok, hdrs)
        assert r.status in (400, 413), (body if len(str(body)) < 200 else "big", r)
        assert r.json()["error"] in ("bad_request", "too_large"), r
    assert post(g, {"transfers": one}, None).status == 401
    dry = curl(g.base, "POST", "/api/money_transfers?dry_run=1", {"transfers": one}, token=ta)
    assert dry.status == 400 and dry.json()["error"] == "bad_request", dry
    assert g.status()["head_hash"] == head
