"""The resolver keeps its accounts' sealed emails in a file, not in memory
(resolver/sealed.c, docs/performance.md's memory figure): an unnamed file in
DATA, written through a buffer. The emails read back the same live, after a
restart on a snapshot and after a replay of the log alone; an erased
account's stays gone, and the file leaves nothing behind in DATA.
"""

from conftest import expect_ok, open_account, wait_for
from test_erasure import live_account, unique_email


def check(c, accts, emails, erased=()):
    for acct, email in zip(accts, emails):
        got = live_account(c, acct)
        if acct in erased:
            assert got["erased"] is True and "email" not in got
        else:
            assert got["email"] == email.lower(), (acct, got)


def test_sealed_emails_read_back_live_after_a_snapshot_and_after_a_replay(fresh_group):
    g = fresh_group("--snapshot-every", "4")
    c = g.client()
    emails = [unique_email("store%d" % i) for i in range(9)]
    accts = [open_account(c, e) for e in emails]
    check(c, accts, emails)
    erased = {accts[2]}
    expect_ok(c.call("erase_account", {"account": accts[2], "force": True}))
    check(c, accts, emails, erased)
    wait_for(lambda: c.status().get("snapshot_seq", 0) >= 8, what="a snapshot")
    c.close()
    g.stop()
    g.start()  # on the snapshot, then the log after it
    c = g.client()
    check(c, accts, emails, erased)
    more = [unique_email("after%d" % i) for i in range(3)]
    accts2 = [open_account(c, e) for e in more]
    check(c, accts + accts2, emails + more, erased)
    c.close()
    g.stop()
    for snap in (g.data / "snapshots").glob("*.snap"):
        snap.unlink()
    g.start()  # the log alone
    c = g.client()
    check(c, accts + accts2, emails + more, erased)
    c.close()
    g.stop()
    leftovers = [p.name for p in g.data.iterdir() if "sealed" in p.name]
    assert leftovers == []
