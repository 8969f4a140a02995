"""Supervision by esbankd (docs/supervision.md): a child that dies is
restarted alone; one that dies more than 10 times in 60 s stops the group
(exit 111); one esbankd per run directory (RUN/esbankd.lock); no child
outlives a SIGKILLed esbankd, and leftovers named by RUN/<name>.pid are
killed at the next start-up; RUN/esbankd.state describes the children.

The build directory comes from $ESBANK_BUILD (default <repo>/build), as in
conftest.py. The intensity test shortens the back-off with the test-only
ESBANK_RESTART_DELAY_MAX_MS.
"""

import json
import os
import signal
import socket
import struct
import subprocess
import time

import msgpack

from conftest import (_drop_group, _make_group, alive, build_dir, esbankd_path, expect_ok,
                      open_account, open_verified)

CHILDREN = ("logger", "resolver", "snapshotter", "mailer", "bus")
RESTART_TIMEOUT_S = 10.0
EXIT_TEMPORARY = 111


# -- helpers -------------------------------------------------------------


def bus_status(sock_path, timeout=1.0):
    """The reply to {"op":"status","id":1} on bus.sock, framed by hand
    (4-byte big-endian length, then the msgpack map); None on any failure."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(sock_path))
        body = msgpack.packb({"op": "status", "id": 1}, use_bin_type=True)
        s.sendall(struct.pack(">I", len(body)) + body)
        buf = b""
        while len(buf) < 4 or len(buf) < 4 + struct.unpack(">I", buf[:4])[0]:
            chunk = s.recv(65536)
            if not chunk:
                return None
            buf += chunk
        n = struct.unpack(">I", buf[:4])[0]
        return msgpack.unpackb(buf[4:4 + n], raw=False, strict_map_key=False)
    except (OSError, ValueError, msgpack.UnpackException):
        return None
    finally:
        s.close()


def wait_live(g, timeout=RESTART_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = bus_status(g.sock_path)
        if r and r.get("ok") is True and r.get("state") == "live":
            return r
        time.sleep(0.05)
    raise AssertionError("bus not live within %.0f s" % timeout)


def read_pid(g, name):
    try:
        return int((g.run / ("%s.pid" % name)).read_text())
    except (OSError, ValueError):
        return None


def wait_new_pid(g, name, old, timeout=RESTART_TIMEOUT_S):
    """Waits until RUN/<name>.pid names a live process other than old."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = read_pid(g, name)
        if pid and pid != old and alive(pid):
            return pid
        time.sleep(0.02)
    raise AssertionError("%s not restarted within %.0f s (pid file: %r)"
                         % (name, timeout, read_pid(g, name)))


def read_state(g):
    return json.loads((g.run / "esbankd.state").read_text())


def state_child(g, name):
    return next(c for c in read_state(g)["children"] if c["name"] == name)


def wait_gone(pids, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.02)
    return [p for p in pids if alive(p)]


def run_esbankd(g, timeout=10.0):
    """Runs one more esbankd on g's directories; (exit status, output)."""
    argv = [str(esbankd_path()), "--data", str(g.data), "--run", str(g.run),
            "--http", "off", "--pwhash-cost", "min"]
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


# -- tests -----------------------------------------------------------------


def test_each_child_killed_comes_back(fresh_group):
    g = fresh_group()
    c = g.client()
    acct = open_verified(c)
    state = read_state(g)
    assert state["esbankd_pid"] == g.proc.pid and state["state"] == "running"
    assert [ch["name"] for ch in state["children"]] == list(CHILDREN)
    assert all(ch["running"] and ch["restarts"] == 0 for ch in state["children"])
    for name in CHILDREN:
        old = read_pid(g, name)
        assert old and alive(old), name
        assert state_child(g, name)["pid"] == old
        os.kill(old, signal.SIGKILL)
        new = wait_new_pid(g, name, old)
        wait_live(g)
        assert g.proc.poll() is None, "esbankd exited after %s died" % name
        assert "%s (pid %d) was killed by signal 9" % (name, old) in g.log_text()
        ch = state_child(g, name)
        assert ch["pid"] == new and ch["running"] and ch["restarts"] == 1, ch
    # The whole pipeline works again: a command, its mail, a query.
    c = g.client()
    acct2 = open_verified(c)
    expect_ok(c.transfer(acct2, acct, 100))
    assert expect_ok(c.get_account(acct))["balance"] == 100000 + 100


def test_second_esbankd_on_same_run_dir_exits_111(fresh_group):
    g = fresh_group()
    pids = {n: read_pid(g, n) for n in CHILDREN}
    rc, out = run_esbankd(g)
    assert rc == EXIT_TEMPORARY, out
    assert "another esbankd (pid %d)" % g.proc.pid in out, out
    assert "esbankd.lock" in out, out
    # The first group was left alone.
    assert {n: read_pid(g, n) for n in CHILDREN} == pids
    assert all(alive(p) for p in pids.values())
    assert g.proc.poll() is None
    wait_live(g)


def test_sigkill_esbankd_then_fresh_start(fresh_group):
    g = fresh_group()
    acct = open_account(g.client())
    kids = [read_pid(g, n) for n in CHILDREN]
    g._close_clients()
    os.kill(g.proc.pid, signal.SIGKILL)
    g.proc.wait(5)
    g.proc = None
    # PR_SET_PDEATHSIG: the children go with esbankd.
    assert not wait_gone(kids), "children outlived esbankd"
    g.start()
    wait_live(g)
    assert expect_ok(g.client().get_account(acct))["account"] == acct
    assert all(p not in kids for p in (read_pid(g, n) for n in CHILDREN))


def test_leftover_of_earlier_esbankd_is_killed(tmp_path):
    """A logger left running (say by an esbankd without PR_SET_PDEATHSIG) holds
    the log's lock and its socket; the next esbankd kills it by its pid file."""
    g = _make_group(tmp_path / "g")
    try:
        g.run.mkdir(parents=True, mode=0o700)
        g.data.mkdir(parents=True, mode=0o700)
        logger = build_dir() / "logger" / "esbank-logger"
        orphan = subprocess.Popen([str(logger), "--data", str(g.data), "--run", str(g.run)],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + 5
            while not (g.run / "logger.sock").exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            (g.run / "logger.pid").write_text("%d\n" % orphan.pid)
            g.start()
            assert orphan.wait(5) == -signal.SIGKILL
        finally:
            if orphan.poll() is None:
                orphan.kill()
                orphan.wait()
        wait_live(g)
        assert read_pid(g, "logger") not in (None, orphan.pid)
        assert "esbank-logger (pid %d) of an earlier esbankd" % orphan.pid in g.log_text()
    finally:
        _drop_group(g)


def test_restart_intensity_stops_group_with_111(fresh_group, monkeypatch):
    monkeypatch.setenv("ESBANK_RESTART_DELAY_MAX_MS", "20")
    g = fresh_group()
    kids = [read_pid(g, n) for n in CHILDREN]
    pid = read_pid(g, "snapshotter")
    for i in range(11):
        assert g.proc.poll() is None, "esbankd gave up after %d deaths" % i
        if i:
            pid = wait_new_pid(g, "snapshotter", pid)
        os.kill(pid, signal.SIGKILL)
    rc = g.proc.wait(20)
    assert rc == EXIT_TEMPORARY, rc
    g.proc = None
    assert "snapshotter died more than 10 times within 60 s" in g.log_text()
    assert "restart 10)" in g.log_text()
    assert not wait_gone(kids + [pid]), "children left after esbankd gave up"
    # Stopped in order: bus first, logger last.
    log = g.log_text()
    assert log.index("stopping bus") < log.index("stopping logger")


def test_client_status_shows_pids_hwm_and_restarts(fresh_group):
    """`esbank status` joins the bus's view (connected, pid, hwm) with
    esbankd's (restarts), so a person sees at a glance what was restarted."""
    g = fresh_group()
    old = read_pid(g, "mailer")
    os.kill(old, signal.SIGKILL)
    new = wait_new_pid(g, "mailer", old)
    wait_live(g)
    deadline = time.monotonic() + RESTART_TIMEOUT_S
    while True:
        out = subprocess.run([str(build_dir() / "client" / "esbank"), "--run", str(g.run),
                              "status"], capture_output=True, text=True, timeout=10)
        assert out.returncode == 0, out.stderr
        lines = {role: ln for ln in out.stdout.splitlines() for role in CHILDREN
                 if " %s " % role in " %s " % ln}
        mailer = lines.get("mailer", "")
        if "pid %d " % new in mailer or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert "connected" in mailer and "pid %d " % new in mailer and "restarts 1" in mailer, \
        out.stdout
    assert "restarts 0" in lines["logger"] and "pid %d " % read_pid(g, "logger") in \
        lines["logger"], out.stdout
