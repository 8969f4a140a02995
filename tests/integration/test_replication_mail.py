"""Mail across failover (issue 13 item 5): a primary's mailer reports each
delivered mail, the bus hands it to the replicator, and the replicator
publishes it as a receipt on NAME.receipts in its own stream NAME_MAIL (never
in the log stream, whose sequences the replicator predicts); a promoted
standby sends every mail that has no receipt. docs/replication.md, "Mail
across failover".

Real nats-servers (a three-node cluster on loopback), a real esbank group,
the Maildir transport (the outbox names carry the seq)."""

import os
import re
import signal
import time

import msgpack
import pytest

import crashkit
from conftest import expect_ok, wait_for  # noqa: F401
from natscluster import nats_cluster  # noqa: F401 (the fixture)
from test_replication import (STREAM, LOG_SUBJECT, groups, needs_replicator,  # noqa: F401
                              primary_group, standby_group, start, status_of, wait_caught_up)

MAIL_STREAM = STREAM + "_MAIL"
RECEIPTS_SUBJECT = STREAM + ".receipts"
SEQ_IN_NAME = re.compile(r"\.esbank-(\d+)\.")
WITHDRAWALS = 12
TIMEOUT_S = 20.0


def outbox_seqs(g):
    """The seqs of the mails delivered to the group's Maildir."""
    seqs = set()
    for d in (g.outbox, g.outbox.parent / "cur"):
        for p in d.glob("*") if d.exists() else []:
            m = SEQ_IN_NAME.search(p.name)
            if m:
                seqs.add(int(m.group(1)))
    return seqs


def receipts(cl):
    """[seq, ...] of every receipt in the NAME_MAIL stream, in stream order."""
    info = cl.stream_info(MAIL_STREAM)
    last = info["state"]["last_seq"] if info else 0
    out = []
    for q in range(1, last + 1):
        m = cl.stream_msg(MAIL_STREAM, q)
        assert m["subject"] == RECEIPTS_SUBJECT, m
        out.extend(msgpack.unpackb(m["data"], raw=False)["seqs"])
    return out


@needs_replicator
def test_primary_publishes_a_receipt_per_delivered_mail(nats_cluster, groups, tmp_path):
    """Every mail the primary's mailer delivers (verification mails and
    withdrawal notices) has exactly one receipt in NAME_MAIL, naming its
    event's seq; the log stream holds log records only, and its config lists
    NAME.log alone."""
    cl = nats_cluster
    a = start(groups, primary_group(tmp_path / "a", cl, "node-a"))
    ca = a.client()
    x, y = crashkit.open_verified_many(a, ca, 2)
    for i in range(WITHDRAWALS):
        expect_ok(ca.withdraw(x if i % 2 else y, 100 + i, key="w%d" % i))
    st = status_of(a)
    assert st["role"] == "primary", st

    mails = wait_for(lambda: len(outbox_seqs(a)) >= 2 + WITHDRAWALS and outbox_seqs(a),
                     TIMEOUT_S, "every mail in the outbox")
    got = wait_for(lambda: sorted(receipts(cl)) == sorted(mails) and receipts(cl),
                   TIMEOUT_S, "a receipt per delivered mail; have %s, mails %s"
                   % (receipts(cl), sorted(mails)))
    assert len(got) == len(set(got)), "a receipt twice: %s" % got
    time.sleep(0.5)  # nothing more comes: no receipt for a mail not delivered
    assert sorted(receipts(cl)) == sorted(outbox_seqs(a))

    log = cl.stream_info(STREAM)
    assert log["config"]["subjects"] == [LOG_SUBJECT], log["config"]
    for q in range(1, log["state"]["last_seq"] + 1):
        assert cl.stream_msg(STREAM, q)["subject"] == LOG_SUBJECT
    mail = cl.stream_info(MAIL_STREAM)["config"]
    assert mail["storage"] == "file" and mail["num_replicas"] == 3, mail
    assert mail["deny_delete"] and mail["deny_purge"], mail


def withdrawal_seqs(g):
    """The seqs of the money_withdrawn events in g's log."""
    evs, _, _ = crashkit.check_state_is_replay(g.client())
    return {e["seq"] for e in evs if e["type"] == "money_withdrawn"}


@needs_replicator
def test_withdrawal_notices_across_a_failover(nats_cluster, groups, tmp_path):
    """Primary a and standby b, each with its own Maildir. a delivers the
    verification mails and a first set of withdrawal notices (their receipts
    in NAME_MAIL); then a's mailer is stopped (SIGSTOP) and more withdrawals
    are acknowledged, whose notices a never delivers; the whole group a is
    killed (kill -9) and b promoted. Every withdrawal notice arrives exactly
    once across both Maildirs, and b sends none of a's delivered mails: the
    duplicate window (a delivered, its receipt not in NAME_MAIL when b read it
    at the promotion) is empty here, since every receipt of a was waited
    for."""
    cl = nats_cluster
    a = start(groups, primary_group(tmp_path / "a", cl, "node-a"))
    b = start(groups, standby_group(tmp_path / "b", cl, "node-b"))
    ca = a.client()
    x, y = crashkit.open_verified_many(a, ca, 2)
    for i in range(WITHDRAWALS):
        expect_ok(ca.withdraw(x if i % 2 else y, 100 + i, key="w%d" % i))
    delivered = wait_for(lambda: len(outbox_seqs(a)) >= 2 + WITHDRAWALS and outbox_seqs(a),
                         TIMEOUT_S, "a's first mails in its outbox")
    wait_for(lambda: sorted(receipts(cl)) == sorted(delivered), TIMEOUT_S,
             "a receipt for each of a's mails")

    mailer = crashkit.child_pid(a, "mailer")
    assert mailer, "no RUN/mailer.pid"
    os.kill(mailer, signal.SIGSTOP)
    for i in range(WITHDRAWALS):
        expect_ok(ca.withdraw(x if i % 2 else y, 200 + i, key="late%d" % i))
    wait_caught_up(b, a)
    withdrawals = withdrawal_seqs(a)
    assert len(withdrawals) == 2 * WITHDRAWALS, withdrawals
    a.kill9()
    assert outbox_seqs(b) == set(), "a standby sent mail"
    late = withdrawals - delivered
    assert len(late) == WITHDRAWALS, (sorted(late), sorted(delivered))

    promoted = expect_ok(b.client().call("promote", timeout=45))  # reads the tail and the receipts, on a loaded machine
    assert promoted["seq"] > max(withdrawals)
    got = wait_for(lambda: outbox_seqs(b) >= late and outbox_seqs(b), TIMEOUT_S,
                   "b sends the notices a had not delivered; b has %s, want %s"
                   % (sorted(outbox_seqs(b)), sorted(late)))
    time.sleep(0.5)  # nothing more comes
    got = outbox_seqs(b)
    assert got == late, "b sent %s, want exactly %s" % (sorted(got), sorted(late))
    seen = sorted(outbox_seqs(a)) + sorted(got)
    assert len(seen) == len(set(seen)), "a mail twice across the Maildirs"
    assert withdrawals <= set(seen), "notices lost: %s" % sorted(withdrawals - set(seen))
    wait_for(lambda: set(receipts(cl)) >= late, TIMEOUT_S,
             "b's deliveries are receipts too")
