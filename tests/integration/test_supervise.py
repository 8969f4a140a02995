"""Supervision by esbankd (docs/supervision.md): a child that dies is
restarted alone; one that dies more than 10 times in 60 s stops the group
(exit 111); one that exits 100 (a permanent error) is not restarted: the
group stops at once, esbankd exits 100 repeating the child's error, and never
says READY; one esbankd per data directory and per run directory
(DATA/esbankd.lock, RUN/esbankd.lock: a second one exits 100 and starts
nothing); no child outlives a SIGKILLed esbankd, and leftovers named by
RUN/<name>.pid are killed at the next start-up; RUN/esbankd.state describes
the children.

The build directory comes from $ESBANK_BUILD (default <repo>/build), as in
conftest.py. The intensity test shortens the back-off with the test-only
ESBANK_RESTART_DELAY_MAX_MS.
"""

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

import msgpack
import pytest
from pathlib import Path

from conftest import (_drop_group, _make_group, alive, build_dir, cmdline, descendants,
                      esbankd_path, expect_ok, open_account, open_verified)

CHILDREN = ("logger", "resolver", "snapshotter", "mailer", "bus")
RESTART_TIMEOUT_S = 10.0
EXIT_TEMPORARY = 111
EXIT_PERMANENT = 100
PERMANENT_STOP_S = 8.0  # the old esbankd restarted such a child for ~40 s


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


def run_esbankd(g, timeout=10.0, data=None):
    """Runs one more esbankd on g's run directory and data (or data);
    (exit status, output)."""
    argv = [str(esbankd_path()), "--data", str(data or g.data), "--run", str(g.run),
            "--http", "off", "--pwhash-cost", "min"]
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


def program_children(pid):
    """{pid: command line} of pid's descendants that are esbank programs or
    esbankd's exec wrapper (not, say, LeakSanitizer's tracer, a clone of
    esbankd itself)."""
    found = {}
    for k in descendants(pid):
        line = cmdline(k)
        if " --exec-child " in line or "/esbank-" in line.split(" ", 1)[0]:
            found[k] = line
    return found


def run_esbankd_ready(data, run, *extra, timeout=PERMANENT_STOP_S):
    """Runs esbankd with --ready-fd until it exits (SIGKILL to it and its
    children after timeout). Returns (exit status or None when killed,
    output, bytes written to the ready fd, {pid: command line} of the
    children it had)."""
    rfd, wfd = os.pipe()
    argv = [str(esbankd_path()), "--data", str(data), "--run", str(run),
            "--pwhash-cost", "min", "--ready-fd", str(wfd)] + list(extra)
    with tempfile.TemporaryFile() as out:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT, pass_fds=(wfd,), start_new_session=True)
        os.close(wfd)
        kids = {}
        deadline = time.monotonic() + timeout
        while p.poll() is None and time.monotonic() < deadline:
            kids.update(program_children(p.pid))
            time.sleep(0.01)
        rc = p.poll()
        if rc is None:
            kids.update(program_children(p.pid))
            for pid in set(kids) | {p.pid}:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            p.wait()
        ready = b""
        while True:
            chunk = os.read(rfd, 256)
            if not chunk:
                break
            ready += chunk
        os.close(rfd)
        out.seek(0)
        return rc, out.read().decode(errors="replace"), ready, kids


def free_tcp_port_held():
    """A listening socket on 127.0.0.1 held by the test: its port is in use."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s


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


@pytest.mark.parametrize("same_data", [True, False], ids=["same-data", "other-data"])
def test_second_esbankd_on_same_run_dir_exits_100(fresh_group, tmp_path, same_data):
    g = fresh_group()
    pids = {n: read_pid(g, n) for n in CHILDREN}
    data = g.data if same_data else tmp_path / "other-data"
    rc, out = run_esbankd(g, data=data)
    assert rc == EXIT_PERMANENT, out
    where = "data" if same_data else "run"
    assert "another esbankd (pid %d) is running on this %s directory" % (g.proc.pid, where) \
        in out, out
    assert "esbankd.lock" in out, out
    assert "started " not in out, out
    # The first group was left alone.
    assert {n: read_pid(g, n) for n in CHILDREN} == pids
    assert all(alive(p) for p in pids.values())
    assert g.proc.poll() is None
    wait_live(g)


def test_second_esbankd_on_same_data_dir_starts_nothing(fresh_group, tmp_path):
    """Another --run on the same data: the second esbankd must not start a
    resolver, snapshotter or mailer on the live data (its mailer would
    deliver queued mail a second time). It exits 100 at once naming the
    holder of DATA/esbankd.lock, and the first group's mail goes out once."""
    g = fresh_group()
    c = g.client()
    before = [open_account(c) for _ in range(3)]
    pids = {n: read_pid(g, n) for n in CHILDREN}
    run2 = Path(tempfile.mkdtemp(prefix="esb", dir="/tmp")) / "run"
    try:
        t0 = time.monotonic()
        rc, out, ready, kids = run_esbankd_ready(g.data, run2, "--http", "off", timeout=5.0)
        took = time.monotonic() - t0
        assert rc == EXIT_PERMANENT, "exit %r after %.1f s:\n%s" % (rc, took, out)
        assert took < 3.0, took
        assert kids == {}, "the second esbankd started %r:\n%s" % (kids, out)
        assert ready == b"", ready
        assert "another esbankd (pid %d) is running on this data directory" % g.proc.pid \
            in out, out
        assert str(g.data / "esbankd.lock") in out, out
        assert not list(run2.glob("*.pid")) and not list(run2.glob("*.sock")), \
            list(run2.iterdir())
    finally:
        shutil.rmtree(run2.parent, ignore_errors=True)
    # The first group did not notice, and each mail was delivered exactly once.
    assert {n: read_pid(g, n) for n in CHILDREN} == pids and g.proc.poll() is None
    after = [open_account(g.client()) for _ in range(2)]
    for acct in before + after:
        g.wait_code(acct)
    time.sleep(0.5)  # a second delivery would come within the mailer's first pass
    for acct in before + after:
        assert len(g.codes_for(acct)) == 1, (acct, g.codes_for(acct))


def test_logger_permanent_error_stops_group_with_100(tmp_path):
    """A log the logger refuses (damaged at seq 0): the logger exits 100.
    esbankd does not restart it, stops the group at once, exits 100 with the
    logger's own message as its last error, and never writes READY."""
    data, run = tmp_path / "data", Path(tempfile.mkdtemp(prefix="esb", dir="/tmp")) / "run"
    data.mkdir(mode=0o700)
    (data / "events.log").write_bytes(b"NOTALOG!" + b"\x00" * 64)
    try:
        t0 = time.monotonic()
        rc, out, ready, kids = run_esbankd_ready(data, run, "--http", "off")
        took = time.monotonic() - t0
    finally:
        shutil.rmtree(run.parent, ignore_errors=True)
    assert rc == EXIT_PERMANENT, "exit %r after %.1f s:\n%s" % (rc, took, out)
    assert took < 5.0, took
    assert ready == b"", "READY before the group was live: %r" % ready
    assert "esbank is live" not in out, out
    assert "restarting logger" not in out and "restarted logger" not in out, out
    assert re.search(r"logger \(pid \d+\) exited with status 100, a permanent error", out), out
    errors = [ln for ln in out.splitlines() if re.match(r"(\S+Z )?error: ", ln)]
    assert "logger failed with a permanent error (exit 100):" in errors[-1], out
    assert "events.log is damaged at seq 0" in errors[-1], out
    assert not wait_gone(kids), "children left after esbankd stopped"


def test_http_port_in_use_stops_group_with_100(tmp_path):
    """esbank-http cannot have its port: exit 100, no READY (though the bus
    itself goes live), and esbankd's last error names the address."""
    held = free_tcp_port_held()
    addr = "127.0.0.1:%d" % held.getsockname()[1]
    data, run = tmp_path / "data", Path(tempfile.mkdtemp(prefix="esb", dir="/tmp")) / "run"
    try:
        rc, out, ready, kids = run_esbankd_ready(data, run, "--http", addr)
    finally:
        held.close()
        shutil.rmtree(run.parent, ignore_errors=True)
    assert rc == EXIT_PERMANENT, "exit %r:\n%s" % (rc, out)
    assert ready == b"", "READY while http could not listen: %r" % ready
    assert "esbank is live" not in out, out
    assert "restarting http" not in out, out
    errors = [ln for ln in out.splitlines() if re.match(r"(\S+Z )?error: ", ln)]
    assert "http failed with a permanent error (exit 100): http %s: address already in use" \
        % addr in errors[-1], out
    assert not wait_gone(kids), "children left after esbankd stopped"


def test_live_waits_for_http_listening(fresh_group):
    """With http on, READY comes only once http holds its port: a connection
    to the address made right after READY is accepted."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    g = fresh_group("--http", "127.0.0.1:%d" % port)
    assert g.ready_via == "pipe"
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert read_state(g)["state"] == "running"


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
