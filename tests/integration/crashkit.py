"""crashkit - helpers for the restart-and-replay tests (test_crash.py,
test_snapshots.py): an independent replay of the log in Python, the state the
server reports, the log file's record layout, child processes by their pid
files, and a retrying load generator whose clients survive crashes.

The replay follows PROTOCOL.md only ("Replaying all events in seq order from
an empty state with the rules above gives exactly the state that the queries
report"); it shares no code with the server.
"""

import os
import random
import re
import signal
import struct
import threading
import time
import uuid

from conftest import OPENING_BALANCE, alive, expect_ok
from esbank_proto import Client, ConnectionClosed

CHILDREN = ("bus", "resolver", "logger", "snapshotter", "mailer")
RETRYABLE = ("unavailable", "overloaded", "internal")

LOG_HEADER_BYTES = 8
LOG_RECORD_HEAD_BYTES = 12  # u32 len, u64 seq
LOG_HASH_BYTES = 32
LOG_BATCH_HEAD_BYTES = 40  # version 2: u64 first seq, u64 last seq, u64 bytes, 16-byte check


# -- waiting ---------------------------------------------------------------


def status(g, timeout=1.0):
    """The status reply, or None when the bus does not answer."""
    try:
        c = Client(g.sock_path, timeout=timeout)
    except OSError:
        return None
    try:
        r = c.call("status", timeout=timeout)
        return r if r.get("ok") is True else None
    except (OSError, TimeoutError, ConnectionClosed):
        return None
    finally:
        c.close()


def wait_settled(g, timeout=20.0, roles=CHILDREN):
    """Waits until the bus is live, every peer connected and every child has a
    live pid file; returns the status."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        assert g.proc is not None and g.proc.poll() is None, \
            "esbankd exited (%r)" % (g.proc and g.proc.returncode)
        st = status(g)
        last = st
        if (st and st["state"] == "live"
                and all(st["peers"].get(r, {}).get("connected") for r in roles if r != "bus")
                and all(child_pid(g, r) and alive(child_pid(g, r)) for r in roles)):
            return st
        time.sleep(0.05)
    raise AssertionError("group not settled within %.0f s; last status %r" % (timeout, last))


def child_pid(g, name):
    try:
        return int((g.run / ("%s.pid" % name)).read_text())
    except (OSError, ValueError):
        return None


def kill_child(g, name):
    """SIGKILLs one child by its RUN/<name>.pid; returns its pid."""
    pid = child_pid(g, name)
    assert pid and alive(pid), "no live %s (pid file: %r)" % (name, pid)
    os.kill(pid, signal.SIGKILL)
    return pid


def wait_restarted(g, name, old, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = child_pid(g, name)
        if pid and pid != old and alive(pid):
            return pid
        assert g.proc.poll() is None, "esbankd exited (%r) after %s died" % (
            g.proc.returncode, name)
        time.sleep(0.02)
    raise AssertionError("%s not restarted within %.0f s" % (name, timeout))


DEATH_RE = re.compile(r"^(?:\S+Z )?(?:error|warn): (\w+) \(pid (\d+)\) "
                      r"(was killed by signal (\d+)[^\n]*|exited with status \d+)", re.M)


def deaths(log_text):
    """[(name, pid, what, signal or None)] of every child death esbankd logged."""
    return [(m.group(1), int(m.group(2)), m.group(3), int(m.group(4)) if m.group(4) else None)
            for m in DEATH_RE.finditer(log_text)]


# -- replay ----------------------------------------------------------------


class Replay:
    """The state rebuilt from events by PROTOCOL.md's rules."""

    def __init__(self):
        self.balance = {}
        self.verified = {}
        self.withdrawn = 0
        self.seq = 0
        self.balance_after = {}  # seq -> balance reported by that command's reply

    def apply(self, e):
        assert e["seq"] == self.seq + 1, "gap or repeat: %d after %d" % (e["seq"], self.seq)
        self.seq = e["seq"]
        t = e["type"]
        if t == "account_opened":
            a = e["account"]
            assert a not in self.balance, "account %s opened twice (seq %d)" % (a, e["seq"])
            assert e["balance"] == OPENING_BALANCE, e
            self.balance[a] = e["balance"]
            self.verified[a] = False
        elif t == "account_verified":
            assert self.verified[e["account"]] is False, e
            self.verified[e["account"]] = True
        elif t == "code_reissued":
            assert self.verified[e["account"]] is False, e
        elif t == "money_transferred":
            f, to, n = e["from"], e["to"], e["amount"]
            assert f != to and self.verified[f] and self.verified[to], e
            assert 1 <= n <= 10**12 and self.balance[f] >= n, e
            self.balance[f] -= n
            self.balance[to] += n
            self.balance_after[e["seq"]] = self.balance[f]
        elif t == "money_withdrawn":
            a, n = e["account"], e["amount"]
            assert self.verified[a] and 1 <= n <= 10**12 and self.balance[a] >= n, e
            self.balance[a] -= n
            self.withdrawn += n
            self.balance_after[e["seq"]] = self.balance[a]
        elif t == "primary_changed":  # replication's takeover record: no money moves
            assert isinstance(e["node"], str) and e["node"], e
        else:
            raise AssertionError("unknown event type %r" % (e,))

    @classmethod
    def of(cls, events):
        r = cls()
        for e in events:
            r.apply(e)
        return r


def server_accounts(c, accounts):
    """{account: (balance, verified)} as get_account reports it."""
    rids = {a: c.send("get_account", {"account": a}) for a in accounts}
    out = {}
    for a, rid in rids.items():
        r = expect_ok(c.reply(rid, timeout=30))
        out[a] = (r["balance"], r["verified"])
    return out


def check_state_is_replay(c):
    """Reads the whole log and every account; asserts the server's state is
    the replay of the log, the sequence has no gaps, keys are unique and the
    money adds up. Returns (events, replay, status)."""
    st = expect_ok(c.status())
    evs, last = c.all_events(page=10000)
    assert st["state"] == "live", st
    assert [e["seq"] for e in evs] == list(range(1, last + 1)), "gap in the sequence"
    assert st["last_seq"] == last and st["durable_seq"] == last, (st, last)
    keys = {}
    for e in evs:
        if "key" in e:
            assert e["key"] not in keys, "key %r has two events: seq %d and %d" % (
                e["key"], keys[e["key"]], e["seq"])
            keys[e["key"]] = e["seq"]
    rp = Replay.of(evs)
    got = server_accounts(c, list(rp.balance))
    want = {a: (rp.balance[a], rp.verified[a]) for a in rp.balance}
    diff = {a: (got[a], want[a]) for a in want if got[a] != want[a]}
    assert not diff, "get_account differs from the replay of the log " \
        "(account: (server, replay)): %r" % dict(list(diff.items())[:10])
    assert sum(b for b, _ in got.values()) == \
        OPENING_BALANCE * len(rp.balance) - rp.withdrawn
    return evs, rp, st


def snapshot_of_state(c, accounts):
    """Everything a restart must preserve, for comparisons."""
    st = expect_ok(c.status())
    accs = {}
    for a in accounts:
        r = expect_ok(c.get_account(a))
        del r["id"]
        accs[a] = r
    return {"accounts": accs, "last_seq": st["last_seq"], "durable_seq": st["durable_seq"],
            "head_hash": st["head_hash"]}


# -- the log file ----------------------------------------------------------


def log_batches(path):
    """[(offset, length in bytes, first seq, last seq)] of every batch of a
    version 2 events.log (common/logfile.c), up to the zeros of preallocated
    space; a version 1 file has no batch headers: each record is given as a
    batch of its own."""
    data = path.read_bytes()
    assert data[:6] == b"ESBLOG", data[:8]
    version = struct.unpack(">H", data[6:8])[0]
    out = []
    off = LOG_HEADER_BYTES
    while off < len(data):
        if version == 2 and not any(data[off:]):
            break  # preallocated space: the end of the log (common/logfile.c)
        if version == 1:
            n, seq = struct.unpack(">IQ", data[off:off + LOG_RECORD_HEAD_BYTES])
            size = LOG_RECORD_HEAD_BYTES + n + LOG_HASH_BYTES
            out.append((off, size, seq, seq))
        else:
            first, last, n = struct.unpack(">QQQ", data[off:off + 24])
            size = LOG_BATCH_HEAD_BYTES + n
            out.append((off, size, first, last))
        assert off + size <= len(data), "partial batch at %d" % off
        off += size
    return out


def log_records(path):
    """[(offset, length in bytes, seq)] of every record of events.log."""
    data = path.read_bytes()
    out = []
    for boff, bsize, first, last in log_batches(path):
        off = boff + (LOG_BATCH_HEAD_BYTES if data[7] == 2 else 0)
        while off < boff + bsize:
            n, seq = struct.unpack(">IQ", data[off:off + LOG_RECORD_HEAD_BYTES])
            size = LOG_RECORD_HEAD_BYTES + n + LOG_HASH_BYTES
            out.append((off, size, seq))
            off += size
    return out


# -- accounts --------------------------------------------------------------


def open_verified_many(g, c, n):
    """Opens n accounts pipelined, verifies each with its mailed code."""
    from conftest import new_email, new_password
    rids = [c.send("open_account", {"email": new_email("crash"), "password": new_password()})
            for _ in range(n)]
    accts = [expect_ok(c.reply(r, timeout=30))["account"] for r in rids]
    codes = {a: g.wait_code(a) for a in accts}
    rids = [c.send("verify_account", {"account": a, "code": codes[a]}) for a in accts]
    for r in rids:
        expect_ok(c.reply(r, timeout=30))
    return accts


# -- the retrying load -----------------------------------------------------


class Worker(threading.Thread):
    """One client: keeps up to `inflight` keyed transfers and withdrawals in
    flight over its own connection, starting at most `rate` new ones a second,
    until stop() is called; then it finishes what it sent. On a dropped
    connection it reconnects and resends every unanswered command with its
    key, in the order first sent; `unavailable`, `overloaded` and `internal`
    replies are retried after a short pause. Every command ends acknowledged
    (acked[key] = (op, fields, reply)) or finally rejected (rejected[key])."""

    def __init__(self, g, accounts, rng, inflight=64, rate=5000, name="w", timeout=90):
        super().__init__(daemon=True)
        self.g = g
        self.accounts = accounts
        self.rng = rng
        self.inflight = inflight
        self.rate = rate
        self.timeout = timeout
        self.tag = "%s-%s" % (name, uuid.uuid4().hex[:8])
        self.acked = {}
        self.rejected = {}
        self.sent = {}  # key -> (op, fields)
        self.retries = {"reconnect": 0, "resent": 0}
        self.retry_codes = {}
        self.error = None
        self.c = None
        self._halt = threading.Event()

    def stop(self):
        self._halt.set()

    def answered(self):
        return len(self.acked) + len(self.rejected)

    def make(self, i):
        k = "%s-%d" % (self.tag, i)
        a, b = self.rng.sample(self.accounts, 2)
        if self.rng.random() < 0.1:
            return k, ("withdraw", {"account": a, "amount": self.rng.randint(1, 4), "key": k})
        return k, ("transfer", {"from": a, "to": b, "amount": self.rng.randint(1, 200), "key": k})

    def connect(self, deadline):
        while True:
            try:
                c = Client(self.g.sock_path, timeout=5)
                return c
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def run(self):
        try:
            self._run()
        except BaseException as e:  # reported by the test
            self.error = e
        finally:
            if self.c:
                self.c.close()

    def _run(self):
        deadline = time.monotonic() + self.timeout
        t0 = time.monotonic()
        todo = []  # keys waiting to be (re)sent, in order
        retry_at = {}  # key -> monotonic time before which it is not resent
        outstanding = {}  # rid -> key on the current connection
        next_i = 0
        self.c = self.connect(deadline)
        while not (self._halt.is_set() and self.answered() == len(self.sent)):
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError("worker %s: %d acked, %d rejected of %d; %d outstanding"
                                   % (self.tag, len(self.acked), len(self.rejected),
                                      len(self.sent), len(outstanding)))
            sending = None
            try:
                while len(outstanding) < self.inflight:
                    k = next((k for k in todo if retry_at.get(k, 0) <= now), None)
                    if k is None:
                        if self._halt.is_set() or next_i >= self.rate * (now - t0):
                            break
                        k, cmd = self.make(next_i)
                        next_i += 1
                        self.sent[k] = cmd
                    else:
                        todo.remove(k)
                        self.retries["resent"] += 1
                    op, fields = self.sent[k]
                    sending = k
                    outstanding[self.c.send(op, fields)] = k
                    sending = None
                self.c._pump(0.005)
                self._take_replies(outstanding, todo, retry_at)
                if self.c.eof:
                    raise ConnectionClosed("eof")
            except (OSError, TimeoutError, ConnectionClosed):
                # The connection is gone: everything unanswered goes again,
                # with its key, in the order it was first sent.
                lost = list(outstanding.values()) + ([sending] if sending else [])
                outstanding.clear()
                self.c.close()
                todo[:] = sorted(set(todo) | set(lost), key=self._order)
                self.retries["reconnect"] += 1
                self.c = self.connect(deadline)

    def _take_replies(self, outstanding, todo, retry_at):
        for rid in [r for r in outstanding if self.c._replies.get(r)]:
            k = outstanding.pop(rid)
            r = self.c.reply(rid)
            if r.get("ok") is True:
                self.acked[k] = self.sent[k] + (r,)
            elif r.get("error") in RETRYABLE:
                self.retry_codes[r["error"]] = self.retry_codes.get(r["error"], 0) + 1
                retry_at[k] = time.monotonic() + 0.05
                todo.append(k)
                todo.sort(key=self._order)
            else:
                self.rejected[k] = self.sent[k] + (r,)

    @staticmethod
    def _order(k):
        return int(k.rsplit("-", 1)[1])


def check_commands(evs, rp, workers):
    """Every acknowledged command's event is in the log with the seq it was
    acknowledged with and the same fields (and the reply's balance is the
    replay's); a finally rejected key has no event; every key sent has an
    outcome."""
    by_key = {e["key"]: e for e in evs if "key" in e}
    for w in workers:
        assert w.error is None, "worker %s failed: %r" % (w.tag, w.error)
        assert set(w.acked) | set(w.rejected) == set(w.sent), w.tag
        for k, (op, fields, r) in w.acked.items():
            e = by_key.get(k)
            assert e is not None, "acknowledged %s %s (seq %d) is not in the log" % (
                op, k, r["seq"])
            assert e["seq"] == r["seq"], "%s acknowledged with seq %d, logged at %d" % (
                k, r["seq"], e["seq"])
            if op == "transfer":
                assert e["type"] == "money_transferred", e
                assert (e["from"], e["to"], e["amount"]) == (
                    fields["from"], fields["to"], fields["amount"]), (e, fields)
            else:
                assert e["type"] == "money_withdrawn", e
                assert (e["account"], e["amount"]) == (fields["account"], fields["amount"]), \
                    (e, fields)
            assert r["balance"] == rp.balance_after[e["seq"]], (k, r, e)
        for k, (op, fields, r) in w.rejected.items():
            assert r.get("error") == "insufficient_funds", \
                "unexpected rejection of %s %s: %r" % (op, k, r)
            assert k not in by_key, "rejected %s %s has event %r" % (op, k, by_key[k])


def seeded_rng(env="ESBANK_CRASH_SEED"):
    seed = int(os.environ.get(env) or random.SystemRandom().randrange(1 << 32))
    print("%s=%d" % (env, seed))
    return random.Random(seed), seed
