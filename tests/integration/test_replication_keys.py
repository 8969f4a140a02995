"""The key store replicated (issue 16 with issue 13): the primary's replicator
puts each account's data key on NAME.keys.<account> in the stream NAME_KEYS
before the log message holding its account_opened event, the server secret on
NAME.keys.secret, and purges an erased account's subject before the log
message holding its account_erased event; standbys take the secret at
--rejoin and write the keys they follow into their DATA/keys.
docs/privacy.md, "Replication"; replicator/keys.c.

Real nats-servers (a three-node cluster on loopback), real esbank groups."""

import subprocess
import threading
import time

from conftest import expect_err, expect_ok, new_password, open_account, wait_for  # noqa: F401
from natscluster import nats_cluster  # noqa: F401 (the fixture)
from test_erasure import assert_nowhere, unique_email
from test_replication import (STREAM, groups, needs_replicator,  # noqa: F401
                              primary_group, replicator_path, standby_group, start,
                              wait_caught_up)
from conftest import Group
import crashkit

KEYS_STREAM = STREAM + "_KEYS"
TIMEOUT_S = 20.0
HEADER_BYTES = 64
SLOT_BYTES = 64


def local_keys(data_dir):
    """{account number (int): key bytes} of the live slots of DATA/keys."""
    raw = (data_dir / "keys").read_bytes()
    out = {}
    for off in range(HEADER_BYTES, len(raw) - SLOT_BYTES + 1, SLOT_BYTES):
        acct = int.from_bytes(raw[off:off + 8], "big")
        if acct:
            out[acct] = raw[off + 16:off + 48]
    return out


def secret_of(data_dir):
    return (data_dir / "keys").read_bytes()[16:48]


def stream_keys(cl):
    """{subject: data} of every message in NAME_KEYS."""
    info = cl.stream_info(KEYS_STREAM)
    assert info, "no stream %s" % KEYS_STREAM
    out = {}
    st = info["state"]
    for q in range(st.get("first_seq", 1), st["last_seq"] + 1):
        try:
            m = cl.stream_msg(KEYS_STREAM, q)
        except Exception:  # noqa: BLE001 (a message replaced or purged)
            continue
        out[m["subject"]] = m["data"]
    return out


def subject_of(acct):
    return "%s.keys.%d" % (STREAM, int(acct))


def email_of(g, acct):
    return g.client().get_account(acct)


def pair(cl, groups, tmp_path):
    a = start(groups, primary_group(tmp_path / "a", cl, "node-a"))
    b = start(groups, standby_group(tmp_path / "b", cl, "node-b"))
    return a, b


def wait_email(g, acct, email):
    return wait_for(lambda: g.client().get_account(acct).get("email") == email.lower(),
                    TIMEOUT_S, "%s answers the email of %s" % (g.base.name, acct))


@needs_replicator
def test_new_primary_reads_and_reserves_old_primarys_emails(nats_cluster, groups, tmp_path):
    """After a failover the new primary answers get_account of an account
    opened on the old one with its email, and refuses its email for a new
    account (already_exists): both groups hold the same secret and keys."""
    cl = nats_cluster
    a, b = pair(cl, groups, tmp_path)
    ca = a.client()
    emails = [unique_email("fo%d" % i) for i in range(3)]
    accts = [open_account(ca, e) for e in emails]
    info = cl.stream_info(KEYS_STREAM)
    assert info["config"]["max_msgs_per_subject"] == 1 and not info["config"]["deny_purge"]
    assert info["config"]["num_replicas"] == 3 and info["config"]["storage"] == "file"
    keys = stream_keys(cl)
    assert keys[STREAM + ".keys.secret"] == secret_of(a.data)
    mine = local_keys(a.data)
    for acct in accts:
        assert keys[subject_of(acct)] == mine[int(acct)]
    wait_caught_up(b, a)
    assert secret_of(b.data) == secret_of(a.data)
    for acct, e in zip(accts, emails):
        wait_email(b, acct, e)  # the standby reads them too
    a.kill9()
    expect_ok(b.client().call("promote", timeout=45))
    cb = b.client()
    for acct, e in zip(accts, emails):
        assert cb.get_account(acct)["email"] == e.lower()
    for e in emails:
        expect_err(cb.open_account(e.upper(), new_password()), "already_exists")
    new = open_account(cb, unique_email("after"))  # the resolver appends after the followed keys
    got = local_keys(b.data)
    assert len(got) == len(set(got.values())), "two slots hold one key"
    assert {int(x) for x in accts + [new]} <= set(got)
    assert stream_keys(cl)[subject_of(new)] == got[int(new)]


@needs_replicator
def test_erasure_reaches_the_standby(nats_cluster, groups, tmp_path):
    """An erasure on the primary: NAME_KEYS holds no key for the account
    (read from the stream), the standby's DATA/keys neither, the standby
    answers erased, and no file of its data directory holds the email."""
    cl = nats_cluster
    a, b = pair(cl, groups, tmp_path)
    ca = a.client()
    email, other = unique_email("gone"), unique_email("kept")
    acct = open_account(ca, email)
    kept = open_account(ca, other)
    wait_email(b, acct, email)
    assert int(acct) in local_keys(b.data)
    expect_ok(ca.call("erase_account", {"account": acct, "force": True}))
    wait_caught_up(b, a)
    wait_for(lambda: b.client().get_account(acct).get("erased") is True, TIMEOUT_S,
             "the standby answers erased")
    keys = stream_keys(cl)
    assert subject_of(acct) not in keys and subject_of(kept) in keys, sorted(keys)
    assert int(acct) not in local_keys(b.data) and int(acct) not in local_keys(a.data)
    assert b.client().get_account(kept)["email"] == other.lower()
    b.stop()
    assert_nowhere(email, b.data)
    assert_nowhere(email, a.data)  # but the outbox: the welcome mail was sent
    expect_ok(ca.open_account(email, new_password()))  # free again on the primary


REFUSED_WINDOW_S = 1.5


@needs_replicator
def test_kill9_of_the_replicator_between_key_and_log(nats_cluster, groups, tmp_path):
    """The log stream refuses new messages (a max_msgs limit set on it), so
    the primary's replicator has put an account's key in NAME_KEYS and cannot
    publish the log message: it is killed (-9) there. With the limit lifted,
    the restarted replicator publishes the event once, the account is
    acknowledged, its key in NAME_KEYS is the primary's, and the standby
    reads its email; nothing is twice in either stream."""
    cl = nats_cluster
    a, b = pair(cl, groups, tmp_path)
    ca = a.client()
    open_account(ca)
    wait_caught_up(b, a)
    info = cl.stream_info(STREAM)
    cfg = dict(info["config"], max_msgs=info["state"]["messages"])
    conn = cl.conn()
    try:
        assert "error" not in conn.js("STREAM.UPDATE." + STREAM, cfg)
    finally:
        conn.close()
    email, result, before = unique_email("k9"), {}, set(local_keys(a.data))

    def opener():
        try:
            result["r"] = a.client().open_account(email, new_password())
        except Exception as e:  # noqa: BLE001
            result["e"] = e
    t = threading.Thread(target=opener, daemon=True)
    t.start()
    local = wait_for(lambda: [n for n, k in local_keys(a.data).items()
                              if n not in before and stream_keys(cl).get(subject_of(n)) == k]
                     or None, TIMEOUT_S, "the new key in NAME_KEYS")
    resyncs_before = a.log_text().count("resync (")
    time.sleep(REFUSED_WINDOW_S)
    assert "r" not in result, "acknowledged while the log stream refused it: %r" % result
    # A refused message is tried again every REPL_RETRY_MS (500 ms), not in a busy loop.
    resyncs = a.log_text().count("resync (") - resyncs_before
    assert resyncs <= REFUSED_WINDOW_S / 0.5 + 2, "%d resyncs in %.1f s" % (resyncs,
                                                                           REFUSED_WINDOW_S)
    old = crashkit.kill_child(a, "replicator")
    cfg["max_msgs"] = -1
    conn = cl.conn()
    try:
        assert "error" not in conn.js("STREAM.UPDATE." + STREAM, cfg)
    finally:
        conn.close()
    crashkit.wait_restarted(a, "replicator", old)
    t.join(60)
    r = result.get("r") or {}
    if r.get("ok"):
        acct = r["account"]
    else:  # the reply was lost with the session: the event is in the log or not at all
        acct = "%016d" % local[0]
    wait_caught_up(b, a)
    ga = a.client().get_account(acct)
    if ga.get("ok"):
        assert ga["email"] == email.lower()
        assert stream_keys(cl)[subject_of(acct)] == local_keys(a.data)[int(acct)]
        wait_email(b, acct, email)
    else:
        expect_err(ga, "not_found")
        expect_err(b.client().get_account(acct), "not_found")
    evs, _, _ = crashkit.check_state_is_replay(a.client())
    seqs = [e["seq"] for e in evs]
    assert len(seqs) == len(set(seqs))


def rejoin(cl, data):
    return subprocess.run([str(replicator_path()), "--rejoin", "--data", str(data), "--nats",
                           cl.urls, "--stream", STREAM], capture_output=True, text=True,
                          timeout=60)


@needs_replicator
def test_another_banks_key_store_is_refused(nats_cluster, groups, tmp_path):
    """--rejoin gives a new standby the stream's secret, and refuses (exit
    100, DATA/keys unchanged) one that holds keys under another secret; a
    primary whose DATA/keys holds another secret than the stream's stops
    with a clear error (exit 100) and publishes nothing."""
    cl = nats_cluster
    a = start(groups, primary_group(tmp_path / "a", cl, "node-a"))
    open_account(a.client())
    fresh = tmp_path / "fresh" / "data"
    r = rejoin(cl, fresh)
    assert r.returncode == 0, r.stderr
    assert secret_of(fresh) == secret_of(a.data) and local_keys(fresh) == {}

    other = Group(tmp_path / "other")  # a bank of its own: its own secret and keys
    groups.append(other)
    other.start()
    open_account(other.client())
    other.stop()
    before = (other.data / "keys").read_bytes()
    r = rejoin(cl, other.data)
    assert r.returncode == 100, (r.returncode, r.stderr)
    assert "another secret" in r.stderr, r.stderr
    assert (other.data / "keys").read_bytes() == before

    log_before = cl.stream_info(STREAM)["state"]["last_seq"]
    c = primary_group(other.base, cl, "node-c")
    groups.append(c)
    try:
        c.start()
    except RuntimeError as e:  # it stopped before it was ready
        assert "esbankd exited with 100" in str(e), str(e)
    else:
        proc = c.proc
        try:
            c.client().open_account(unique_email("c"), new_password())
        except Exception:  # noqa: BLE001 (the group stops while it answers)
            pass
        wait_for(lambda: proc.poll() is not None, TIMEOUT_S, "the group with another secret stops")
        assert proc.returncode == 100, c.log_tail()
    assert "hold different secrets" in c.log_tail(400), c.log_tail()
    assert cl.stream_info(STREAM)["state"]["last_seq"] == log_before
    assert stream_keys(cl)[STREAM + ".keys.secret"] == secret_of(a.data)
