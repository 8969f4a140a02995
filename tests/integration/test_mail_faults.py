"""Mail under disk faults and a long-absent mailer (docs/mail.md): a failed
spool write is sent again, the address book survives failed writes and
fsyncs, and mails past the bus's cap are rebuilt from the log.

The faults come from the LD_PRELOAD shim (faultshim.py); every rule names a
path under DATA/mail, so only the mailer is hit.
"""

import os
import re
import signal
import time

import pytest

import conftest
from conftest import (Group, cmdline, descendants, expect_ok, new_email, open_verified,
                      wait_for)
from faultshim import Faults

ADDR_LINE_RE = re.compile(r"([1-9][0-9]{15}) (\S+@\S+)")


@pytest.fixture
def shim_group(tmp_path):
    """factory(env) -> (group, faults): a started group whose programs run
    with the fault shim (no rule yet) and env added."""
    made = []

    def factory(env=None):
        faults = Faults(tmp_path)
        g = Group(tmp_path / ("g%d" % len(made)), env={**faults.env(), **(env or {})})
        conftest._active_groups.append(g)
        made.append(g)
        g.start()
        return g, faults

    yield factory
    for g in made:
        conftest._drop_group(g)


def mails_of(g, seq):
    """The outbox files of the mail of event seq (Maildir: '<s>.esbank-<seq>.<host>')."""
    tag = ".esbank-%d." % seq
    return [p for p, _, _ in g.mails() if tag in p.name]


def wait_mails_once(g, seqs, what):
    wait_for(lambda: all(mails_of(g, s) for s in seqs), what=what)
    time.sleep(0.3)  # a second copy would come now
    counts = {s: len(mails_of(g, s)) for s in seqs}
    assert counts == {s: 1 for s in seqs}


def shim_hit(g, op_action, match):
    """True once the shim's log says it did op_action on a path holding match."""
    pat = r"faultshim: pid \d+: %s \S*%s" % (re.escape(op_action), re.escape(match))
    return re.search(pat, g.log_text()) is not None


def mailer_pid(g):
    for p in descendants(g.proc.pid):
        if "esbank-mailer" in cmdline(p):
            return p
    return None


def address_book(g):
    """{account: email} as the file says (a later line wins); every line whole."""
    text = (g.data / "mail" / "addresses").read_text()
    assert text == "" or text.endswith("\n"), "a partial last line: %r" % text[-80:]
    book = {}
    for line in text.splitlines():
        m = ADDR_LINE_RE.fullmatch(line)
        assert m, "a malformed line in the address book: %r" % line
        book[m.group(1)] = m.group(2)
    return book


def open_with(c, addr):
    return expect_ok(c.open_account(addr, "pw-" + addr))


# -- item 8: a failed spool write ---------------------------------------------


def test_failed_spool_write_is_sent_again_exactly_once(shim_group):
    g, faults = shim_group()
    c = g.client()
    acct = open_verified(c)
    faults.set("write eio mail/queue/ 1")
    first = expect_ok(c.withdraw(acct, 100))["seq"]
    wait_for(lambda: shim_hit(g, "write eio", "mail/queue/"), what="the failed spool write")
    # a newer mail must not carry the mailer's hwm past the failed one
    second = expect_ok(c.withdraw(acct, 200))["seq"]
    wait_mails_once(g, [first, second], "both withdrawal mails")
    assert "$1.00 was withdrawn" in mails_of(g, first)[0].read_text()
    third = expect_ok(c.withdraw(acct, 300))["seq"]
    wait_mails_once(g, [third], "a mail after the fault")


# -- item 9: the address book -------------------------------------------------


@pytest.mark.parametrize("rule", ["write torn addresses 1", "write short addresses"])
def test_address_book_survives_a_failed_write(shim_group, rule):
    g, faults = shim_group()
    c = g.client()
    faults.set(rule)
    a, b = new_email("torn"), new_email("next")
    ra = open_with(c, a)
    wait_for(lambda: shim_hit(g, " ".join(rule.split()[:2]), "addresses"), what="the faulty write")
    rb = open_with(c, b)
    wait_mails_once(g, [ra["seq"], rb["seq"]], "both verification mails")
    faults.clear()
    g.stop()
    g.start()  # the mailer loads the book again
    book = address_book(g)
    assert book.get(ra["account"]) == a and book.get(rb["account"]) == b


def test_address_book_is_rewritten_after_a_failed_fsync(shim_group):
    g, faults = shim_group()
    c = g.client()
    a, b = new_email("before"), new_email("during")
    ra = open_with(c, a)
    wait_mails_once(g, [ra["seq"]], "the first verification mail")
    path = g.data / "mail" / "addresses"
    inode = os.stat(path).st_ino
    faults.set("fsync eio addresses 1")
    rb = open_with(c, b)
    wait_mails_once(g, [rb["seq"]], "the second verification mail")
    assert shim_hit(g, "fsync eio", "addresses")
    # An fsync that failed may have dropped the line's pages and marked them
    # clean: the shim cannot drop pages, so what is checked is that the book
    # was written anew to another file (which fsync made durable), never
    # fsync'd a second time in place.
    assert os.stat(path).st_ino != inode, "the address book was not rewritten"
    faults.clear()
    g.stop()
    g.start()
    book = address_book(g)
    assert book.get(ra["account"]) == a and book.get(rb["account"]) == b


# -- item 10: more mails than the bus holds ------------------------------------


def test_mailer_away_past_the_cap_gets_every_withdrawal_once(shim_group):
    cap = 5
    g, _ = shim_group({"ESBANK_BUS_MAIL_PENDING_MAX": str(cap)})
    c = g.client()
    acct = open_verified(c)
    pid = mailer_pid(g)
    os.kill(pid, signal.SIGSTOP)  # what the bus sends it now stays unread
    try:
        seqs = [expect_ok(c.withdraw(acct, 100 + i))["seq"] for i in range(cap + 7)]
    finally:
        os.kill(pid, signal.SIGKILL)  # ... and is lost; esbankd starts a new one
    wait_for(lambda: mailer_pid(g) not in (None, pid), what="a new mailer")
    wait_mails_once(g, seqs, "every withdrawal mail")
    assert "are not held" in g.log_text()
    for i, s in enumerate(seqs):
        text = mails_of(g, s)[0].read_text()
        assert "$%d.%02d was withdrawn" % divmod(100 + i, 100) in text
