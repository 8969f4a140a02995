"""DELETE /api/account (issue 16, item 1; docs/privacy.md): erase_account of the
logged-in account over REST, never forced; its dry run; GET /api/account after
it answers erased: true and no email; the errors' statuses.
"""
from test_http import curl, fresh_email, group, verified_account  # noqa: F401


def test_delete_account_erases_the_logged_in_account(group):  # noqa: F811
    g = group
    acct, tok = verified_account(g, "erase")
    email = curl(g.base, "GET", "/api/account", token=tok).json()["email"]
    assert curl(g.base, "DELETE", "/api/account").status == 401
    r = curl(g.base, "DELETE", "/api/account", token=tok)
    assert r.status == 409 and r.json()["error"] == "balance_not_zero", r
    bal = curl(g.base, "GET", "/api/account", token=tok).json()["balance"]
    assert curl(g.base, "POST", "/api/withdraw", {"amount": bal}, token=tok).status == 200
    d = curl(g.base, "DELETE", "/api/account?dry_run=1", token=tok)
    assert d.status == 200 and d.json()["dry_run"] is True, d
    assert curl(g.base, "GET", "/api/account", token=tok).json()["email"] == email
    r = curl(g.base, "DELETE", "/api/account", token=tok)
    assert r.status == 200 and r.json()["seq"] == d.json()["seq"], r
    a = curl(g.base, "GET", "/api/account", token=tok).json()
    assert a["erased"] is True and "email" not in a and a["account"] == acct, a
    r = curl(g.base, "DELETE", "/api/account", token=tok)
    assert r.status == 409 and r.json()["error"] == "already_erased", r
    # the email is free again
    again = fresh_email("x")  # any email opens; the erased one too
    for e in (email, again):
        r = curl(g.base, "POST", "/api/account", {"email": e, "password": "correct horse battery"})
        assert r.status == 201, r
