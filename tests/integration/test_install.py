"""Operations (issue 14, items 3 and 7): --version on every program, an
unknown ESBANK_LOG refused, esbankd's line prefixes (UTC time; <N>
priorities under the journal), systemd's READY=1 on NOTIFY_SOCKET once live,
and the tree `meson install --destdir` writes."""

import json
import os
import re
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO, Group, build_dir, wait_for

EXIT_USAGE = 100
PROGRAMS = {  # name: its folder in the build tree
    "esbankd": "supervisor", "esbank": "client", "esbank-bus": "bus",
    "esbank-resolver": "resolver", "esbank-logger": "logger",
    "esbank-snapshotter": "snapshotter", "esbank-mailer": "mailer",
    "esbank-http": "http", "esbank-replicator": "replicator",
}
STAMP_RE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z ")
# esbankd's own lines ("warn: ...") and its programs' ("logger   | warn: ...")
PRIO_RE = re.compile(r"<(\d)>(?:[\w-]+ +\| )?(debug|info|warn|error): ")
PRIORITY = {"error": 3, "warn": 4, "info": 6, "debug": 7}


def project_version():
    text = (REPO / "meson.build").read_text()
    return re.search(r"version:\s*'([^']+)'", text).group(1)


def built_programs():
    found = {n: build_dir() / d / n for n, d in PROGRAMS.items()}
    return {n: p for n, p in found.items() if p.exists()}


def group_lines(g):
    """esbankd's output lines, without the harness's own "=====" lines."""
    return [ln for ln in g.log_text().splitlines() if ln and not ln.startswith("=====")]


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_version_on_every_program(name):
    """NAME --version: exit 0, "NAME (esbank) VERSION" with meson's project
    version, then the git commit it was built from (a commit of this
    repository) when built from a checkout."""
    path = built_programs().get(name)
    if path is None:
        pytest.skip("%s not built (esbank-replicator needs libnats)" % name)
    r = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert lines[0] == "%s (esbank) %s" % (name, project_version()), r.stdout
    if (REPO / ".git").exists():
        m = re.fullmatch(r"git commit ([0-9a-f]{12})\+?", lines[1])
        assert m, r.stdout
        assert subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", m.group(1)]).returncode == 0


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_unknown_esbank_log_exits_100(name, tmp_path):
    """ESBANK_LOG=loud: every program exits 100 at once, naming the values
    it takes, and starts nothing (no data directory)."""
    path = built_programs().get(name)
    if path is None:
        pytest.skip("%s not built" % name)
    data, run = tmp_path / "data", tmp_path / "run"
    args = ["status"] if name == "esbank" else ["--data", str(data), "--run", str(run)]
    if name in ("esbank-bus",):
        args = ["--run", str(run)]
    env = {**os.environ, "ESBANK_LOG": "loud"}
    r = subprocess.run([str(path)] + args, capture_output=True, text=True, timeout=10,
                       env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == EXIT_USAGE, r
    assert "ESBANK_LOG is debug, info, warn or error, not 'loud'" in r.stderr, r.stderr
    assert not data.exists() and not run.exists()


def test_esbankd_lines_carry_utc_timestamps(tmp_path):
    """Every line esbankd writes (its own and its programs') starts with the
    UTC time in RFC 3339 with milliseconds, within the run's time."""
    t0 = time.time()
    g = Group(tmp_path / "g")
    try:
        g.start()
        g.stop()
    finally:
        g.cleanup()
    t1 = time.time()
    lines = group_lines(g)
    assert any("| info: " in ln for ln in lines) and any("esbank is live" in ln for ln in lines)
    for ln in lines:
        m = STAMP_RE.match(ln)
        assert m, "a line without a UTC timestamp: %r" % ln
        t = time.mktime(time.strptime(m.group(1)[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        assert t0 - 1 <= t <= t1 + 1, (ln, t0, t1)
        assert not ln[len(m.group(0)):].startswith("<"), ln


def test_esbankd_journal_priorities(tmp_path):
    """With JOURNAL_STREAM naming esbankd's stderr (as systemd sets it), lines
    carry <N> instead of the time: error <3>, warn <4>, info <6>, debug <7>,
    for esbankd's own lines and its programs'."""
    g = Group(tmp_path / "g", env={"ESBANK_LOG": "debug"})
    g.log_path.touch()
    st = os.stat(g.log_path)
    g.env["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
    try:
        g.start()
        c = g.client()
        c.call("ping")
        pid = int((g.run / "logger.pid").read_text())
        os.kill(pid, 9)  # esbankd: "error: logger ... killed", "warn: restarting"
        wait_for(lambda: "restarted logger" in g.log_text(), 10, "logger restarted")
        g.stop()
    finally:
        g.cleanup()
    seen = set()
    for ln in group_lines(g):
        assert not STAMP_RE.match(ln), "a timestamp under the journal: %r" % ln
        m = PRIO_RE.match(ln)
        if m:
            assert int(m.group(1)) == PRIORITY[m.group(2)], ln
            seen.add(m.group(2))
        else:
            assert re.match(r"<6>", ln), "no priority: %r" % ln
    assert seen == set(PRIORITY), seen


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_sd_notify_ready_once_live(tmp_path, abstract):
    """NOTIFY_SOCKET (a path, or '@name' abstract): esbankd sends exactly one
    "READY=1" datagram, and only when the group is live."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = "@esbank-test-%d-%d" % (os.getpid(), time.monotonic_ns())
        sock.bind("\0" + name[1:])
    else:
        name = tempfile.mktemp(prefix="esbnotify", dir="/tmp")
        sock.bind(name)
    g = Group(tmp_path / "g", env={"NOTIFY_SOCKET": name})
    starter = threading.Thread(target=g.start, kwargs={"wait_peers": False})
    try:
        starter.start()
        sock.settimeout(20)
        msg = sock.recv(4096)
        live_at_notify = g._status_live()
        starter.join()
        assert msg == b"READY=1"
        assert live_at_notify, "READY=1 before status said live"
        sock.settimeout(0.5)
        with pytest.raises(socket.timeout):
            sock.recv(4096)  # no second READY
    finally:
        starter.join()
        g.stop()
        g.cleanup()
        sock.close()
        if not abstract:
            os.unlink(name)


def meson_prefix(build):
    opts = json.loads(subprocess.run(["meson", "introspect", "--buildoptions", str(build)],
                                     capture_output=True, text=True, check=True).stdout)
    return {o["name"]: o["value"] for o in opts}


def test_meson_install_tree(tmp_path):
    """meson install --destdir: the programs, a man page for each, the units
    with the configured prefix (no @...@ left, no RestartSteps, esbankd's
    Type=notify), the sysusers.d and tmpfiles.d files, the example
    environment file and docs/operations.md."""
    build = build_dir()
    dest = tmp_path / "dest"
    r = subprocess.run(["meson", "install", "-C", str(build), "--no-rebuild", "--quiet",
                        "--destdir", str(dest)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    opts = meson_prefix(build)
    prefix = opts["prefix"]
    root = dest / prefix.lstrip("/")
    bindir = root / opts["bindir"]
    for name in built_programs():
        exe = bindir / name
        assert exe.is_file() and os.access(exe, os.X_OK), exe
        man = root / opts["mandir"] / "man1" / (name + ".1")
        assert man.is_file(), man
        text = man.read_text()
        assert ".TH %s" % name.upper() in text and project_version() in text, man
    units = root / "lib" / "systemd" / "system"
    names = sorted(p.name for p in units.iterdir())
    assert "esbankd.service" in names and "esbank.target" in names, names
    for unit in units.iterdir():
        text = unit.read_text()
        assert "@" not in text, unit  # no @bindir@ left
        assert "RestartSteps" not in text and "RestartMaxDelaySec" not in text, unit
        assert "/usr/local/bin" not in text or prefix == "/usr/local", unit
        for exec_line in re.findall(r"^ExecStart=(\S+)", text, re.M):
            assert exec_line == "%s/%s/%s" % (prefix, opts["bindir"], unit.stem), unit
    esbankd = (units / "esbankd.service").read_text()
    assert re.search(r"^Type=notify$", esbankd, re.M), esbankd
    assert "EnvironmentFile=-%s/esbank/esbank.env" % (
        opts["sysconfdir"] if opts["sysconfdir"].startswith("/")
        else prefix + "/" + opts["sysconfdir"]) in esbankd
    doc = re.search(r"^Documentation=.*file://(\S+)", esbankd, re.M).group(1)
    assert (dest / doc.lstrip("/")).is_file(), doc  # points at an installed file
    sysusers = (root / "lib" / "sysusers.d" / "esbank.conf").read_text()
    assert re.search(r"^u\s+esbank\s", sysusers, re.M), sysusers
    tmpfiles = (root / "lib" / "tmpfiles.d" / "esbank.conf").read_text()
    assert re.search(r"^d\s+/var/lib/esbank\s+0700\s+esbank\s+esbank", tmpfiles, re.M)
    docdir = root / opts["datadir"] / "doc" / "esbank"
    env = (docdir / "esbank.env.example").read_text()
    assert "ESBANK_HTTP=" in env and "ESBANK_LOG=" in env
    assert (docdir / "operations.md").is_file()
