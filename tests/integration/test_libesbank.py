"""libesbank (issue 14 item 2, docs/libesbank.md): the C client library.

The example program examples/bank_tour.c is built against the
*installed* library (meson install --destdir, found with pkg-config, the
shared and the static one) and run against a real group: two accounts
opened and verified with the Maildir codes, a keyed transfer, a rule error,
pipelined async reads of the balances and an async subscription. The
connect errors of the library (which the esbank CLI prints) are checked
for a missing group, a stale socket, a user who may not reach the socket
and a user the bus refuses by SO_PEERCRED.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import REPO, build_dir
from test_foreign_user import ensure_user, open_path_to_run

EXAMPLE = REPO / "examples" / "bank_tour.c"
FOREIGN = "esbforeign"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(prefix root inside DESTDIR, libdir, the environment for pkg-config)."""
    build = build_dir()
    dest = tmp_path_factory.mktemp("dest")
    r = subprocess.run(["meson", "install", "-C", str(build), "--no-rebuild", "--quiet",
                        "--destdir", str(dest)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    pcs = list(dest.rglob("esbank.pc"))
    assert len(pcs) == 1, pcs
    libdir = pcs[0].parent.parent
    env = dict(os.environ, PKG_CONFIG_PATH=str(pcs[0].parent), PKG_CONFIG_SYSROOT_DIR=str(dest))
    return dest, libdir, env


def pkg_config(env, *args):
    r = subprocess.run(["pkg-config"] + list(args) + ["esbank"], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def run_tour(exe, g, env=None):
    r = subprocess.run([str(exe), str(g.run), str(g.outbox.parent)], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def check_tour(out, g):
    accounts = re.findall(r"^opened (\d{16}) \(seq \d+\)$", out, re.M)
    assert len(accounts) == 2, out
    assert len(re.findall(r"^verified \d{16} \(seq \d+\)$", out, re.M)) == 2, out
    m = re.search(r"^transferred 1250 \(seq (\d+), balance 98750\)$", out, re.M)
    assert m, out
    seq = int(m.group(1))
    assert "same account: same_account" in out, out
    # eight get_account calls in flight at once, each answered
    assert "in flight: 8" in out, out
    balances = re.findall(r"^async balance (\d{16}) (\d+)$", out, re.M)
    assert sorted(set(balances)) == sorted({(accounts[0], "98750"), (accounts[1], "101250")})
    assert len(balances) == 8, out
    assert "subscribed: ok" in out, out
    # the subscription from seq 1 reached the transfer's event, as JSON
    ev = re.search(r"^event (\d+) money_transferred (\{.*\})$", out, re.M)
    assert ev and int(ev.group(1)) == seq, out
    assert '"from":"%s"' % accounts[0] in ev.group(2) and '"amount":1250' in ev.group(2)
    assert re.search(r"^async replies 8, events %d$" % seq, out, re.M), out
    # the library's reply matches the server's state
    st = g.client().get_account(accounts[1])
    assert st["balance"] == 101250


def sanitize_flags():
    """-fsanitize=... when the build under test is a sanitizer build (its
    objects, in libesbank.a too, call the sanitizers' runtime)."""
    info = build_dir() / "meson-info" / "intro-buildoptions.json"
    try:
        opts = {o["name"]: o["value"] for o in json.loads(info.read_text())}
    except (OSError, ValueError, KeyError):
        return []
    san = opts.get("b_sanitize", "none")
    return [] if san in ("none", "", None) else ["-fsanitize=" + san]


def test_example_built_against_the_installed_library(installed, fresh_group, tmp_path):
    dest, libdir, env = installed
    if not shutil.which("pkg-config") or not shutil.which("cc"):
        pytest.skip("pkg-config or cc missing")
    header = list(dest.rglob("include/esbank.h"))
    assert header, "esbank.h not installed"
    assert (libdir / "libesbank.a").is_file() and (libdir / "libesbank.so").exists()
    # the shared library exports the esbank_* names only
    nm = subprocess.run(["nm", "-D", "--defined-only", str(libdir / "libesbank.so")],
                        capture_output=True, text=True, check=True).stdout
    names = [line.split()[-1].split("@")[0] for line in nm.splitlines() if line.split()]
    assert "esbank_transfer" in names and "esbank_async_call" in names
    assert [n for n in names if not n.startswith("esbank_") and n != "ESBANK_1"] == []
    # build the example with the installed header and library, shared and static
    san = sanitize_flags()  # a sanitized build's library needs its runtime
    shared_exe = tmp_path / "bank_tour"
    r = subprocess.run(["cc", "-std=c11", "-Wall", "-Werror", str(EXAMPLE), "-o", str(shared_exe)]
                       + san + pkg_config(env, "--cflags", "--libs"),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    static_exe = tmp_path / "bank_tour_static"
    r = subprocess.run(["cc", "-std=c11", "-Wall", "-Werror", str(EXAMPLE), "-o", str(static_exe)]
                       + san + ["-Wl,-Bstatic"] + pkg_config(env, "--static", "--cflags", "--libs")
                       + ["-Wl,-Bdynamic"], capture_output=True, text=True)
    if r.returncode != 0:  # libuv/msgpack may have no static archive: then only ours
        r = subprocess.run(["cc", "-std=c11", str(EXAMPLE), "-o", str(static_exe)] + san + [
                            "-I%s" % header[0].parent, str(libdir / "libesbank.a"),
                            "-luv", "-lmsgpackc"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ldd = subprocess.run(["ldd", str(static_exe)], capture_output=True, text=True).stdout
    assert "libesbank" not in ldd, ldd
    g = fresh_group()
    run_env = dict(os.environ, LD_LIBRARY_PATH=str(libdir))
    ldd = subprocess.run(["ldd", str(shared_exe)], env=run_env, capture_output=True,
                         text=True).stdout
    assert str(libdir / "libesbank.so.1") in ldd, ldd
    check_tour(run_tour(shared_exe, g, env=run_env), g)
    check_tour(run_tour(static_exe, g), g)


def esbank(*args, user=None):
    cmd = [str(build_dir() / "client" / "esbank")] + list(args)
    if user:
        cmd = ["setpriv", "--reuid=%d" % user.pw_uid, "--regid=%d" % user.pw_gid,
               "--init-groups"] + cmd
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd="/")


def test_connect_errors_say_what_and_where(tmp_path):
    """No group: bus.sock not found (111); a stale socket: nobody listens
    (111); each message names the run directory."""
    run = Path(tempfile.mkdtemp(prefix="esb", dir="/tmp"))
    try:
        r = esbank("--run", str(run), "ping")
        assert r.returncode == 111, r
        assert "no esbank group at %s: bus.sock not found" % run in r.stderr, r.stderr
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(str(run / "bus.sock"))
        s.close()  # the file stays, nobody listens
        r = esbank("--run", str(run), "ping")
        assert r.returncode == 111, r
        assert "no esbank group at %s: nobody listens on bus.sock" % run in r.stderr, r.stderr
    finally:
        shutil.rmtree(run)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root (useradd, setpriv)")
def test_connect_errors_for_a_foreign_user(fresh_group):
    """A user who cannot reach the socket: permission denied (100); with the
    modes opened, the bus closes the connection (SO_PEERCRED) and the
    library's ping says the user is not admitted (100), not a bare EOF."""
    foreign = ensure_user(FOREIGN)
    g = fresh_group()
    open_path_to_run(g)
    r = esbank("--run", str(g.run), "ping", user=foreign)
    assert r.returncode == 100, r
    assert "cannot reach %s/bus.sock: permission denied" % g.run in r.stderr, r.stderr
    os.chmod(g.run, 0o711)
    os.chmod(g.run / "bus.sock", 0o666)
    try:
        r = esbank("--run", str(g.run), "ping", user=foreign)
    finally:
        os.chmod(g.run, 0o700)
        os.chmod(g.run / "bus.sock", 0o600)
    assert r.returncode == 100, r
    assert ("closed the connection without a reply: user %d is not admitted"
            % foreign.pw_uid) in r.stderr, r.stderr
    assert esbank("--run", str(g.run), "ping").returncode == 0


def test_cli_speaks_through_the_library(fresh_group):
    """The esbank CLI's link is the library's wire layer: ping, status and an
    error reply (exit 100, the code named) work through it."""
    g = fresh_group()
    r = esbank("--run", str(g.run), "ping")
    assert r.returncode == 0 and "pong from" in r.stdout, r
    r = esbank("--run", str(g.run), "--json", "status")
    assert r.returncode == 0 and '"state":"live"' in r.stdout.replace(" ", ""), r
    r = esbank("--run", str(g.run), "show", "1234567890123456")
    assert r.returncode == 100 and "(not_found)" in r.stderr, r
