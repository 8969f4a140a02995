"""Bad input that once stopped a process of the group: each case gets its
clear answer, changes nothing, and every process keeps running."""

from conftest import expect_err, expect_ok, open_account
from test_limits import child_pid

PASSWORD_BYTES_MAX = 1024  # LEDGER_PASSWORD_BYTES_MAX: longer ones cannot open


def test_authenticate_with_an_overlong_password_is_auth_failed(group):
    """authenticate copied any password into a 1025-byte buffer in the
    resolver: 900,000 bytes killed it (signal 11) and every client in flight
    got unavailable. Any length is now answered auth_failed, for a known
    account and an unknown one alike, and the resolver stays the same."""
    c = group.client()
    acct = open_account(c)
    resolver = child_pid(group, "resolver")
    seq = expect_ok(c.status())["last_seq"]
    for size in (PASSWORD_BYTES_MAX + 1, 65536, 900000):
        for account in (acct, "4417000000000000"):
            expect_err(c.call("authenticate", {"account": account, "password": "p" * size}),
                       "auth_failed")
    expect_ok(c.ping())
    assert child_pid(group, "resolver") == resolver
    assert expect_ok(c.status())["last_seq"] == seq
