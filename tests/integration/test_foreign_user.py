"""Who may connect (issue 8, PROTOCOL.md "Who may connect"): the run
directory is 0700, every socket 0600, and every listener (bus.sock and the
peers' sockets) checks the connecting process's user id with SO_PEERCRED,
so a foreign user is refused even when the file modes would let it in.
--allow-group admits the members of one group to bus.sock only.

A second user and a group are made with useradd / groupadd; the foreign
client runs under setpriv. Needs root (skipped otherwise).
"""

import grp
import json
import os
import pwd
import stat
import subprocess
import time

import pytest

from conftest import expect_ok, open_verified
from test_limits import check_live_and_replay

FOREIGN = "esbforeign"
MEMBER = "esbmember"
GROUP = "esbguests"
SOCKETS = ("bus.sock", "resolver.sock", "logger.sock", "snapshotter.sock", "mailer.sock")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (useradd, setpriv)")

# Runs as the other user: connects, sends one ping, says what happened.
PROBE = r"""
import json, socket, struct, sys
out = {}
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print(json.dumps({"connect": e.__class__.__name__, "errno": e.errno})); sys.exit()
body = b"\x82\xa2op\xa4ping\xa2id\x07"
try:
    s.sendall(struct.pack(">I", len(body)) + body)
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) >= 4 and len(data) >= 4 + struct.unpack(">I", data[:4])[0]:
            break
    out["reply"] = data[4:].hex() if data else None
    out["eof"] = not data or len(data) < 4
except OSError as e:
    out["error"] = e.__class__.__name__
print(json.dumps(out))
"""


def ensure_user(name, groups=()):
    if subprocess.run(["id", name], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                       check=True, capture_output=True)
    for g in groups:
        subprocess.run(["usermod", "-a", "-G", g, name], check=True, capture_output=True)
    return pwd.getpwnam(name)


def ensure_group(name):
    try:
        return grp.getgrnam(name)
    except KeyError:
        subprocess.run(["groupadd", name], check=True, capture_output=True)
        return grp.getgrnam(name)


@pytest.fixture(scope="module")
def users():
    if not (os.path.exists("/usr/sbin/useradd") and os.path.exists("/usr/bin/setpriv")):
        pytest.skip("useradd or setpriv missing")
    g = ensure_group(GROUP)
    foreign = ensure_user(FOREIGN)
    member = ensure_user(MEMBER, groups=(GROUP,))
    return foreign, member, g


def probe_as(user, path):
    """What the user sees connecting to path and sending a ping."""
    r = subprocess.run(["setpriv", "--reuid=%d" % user.pw_uid, "--regid=%d" % user.pw_gid,
                        "--init-groups", "/usr/bin/python3", "-c", PROBE, str(path)],
                       capture_output=True, text=True, timeout=30, cwd="/")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def open_path_to_run(g):
    """Lets others reach the run directory (the test's /tmp parents are 0700)."""
    os.chmod(g.run.parent, 0o711)


def test_run_dir_and_sockets_are_private(fresh_group):
    g = fresh_group()
    assert stat.S_IMODE(os.stat(g.run).st_mode) == 0o700
    for name in SOCKETS:
        st = os.stat(g.run / name)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o600, "%s is %o" % (name, stat.S_IMODE(st.st_mode))


def test_foreign_user_cannot_reach_the_sockets(fresh_group, users):
    foreign, _, _ = users
    g = fresh_group()
    open_path_to_run(g)
    for name in SOCKETS:
        r = probe_as(foreign, g.run / name)
        assert r.get("connect") == "PermissionError", (name, r)
    check_live_and_replay(g)


def test_foreign_user_refused_by_peercred_on_every_socket(fresh_group, users):
    """Even with the directory and every socket opened to all (a wrong
    umask, a careless chmod), each listener closes a foreign connection
    without answering it; the group is not disturbed."""
    foreign, _, _ = users
    g = fresh_group()
    c = g.client()
    a, b = open_verified(c), open_verified(c)
    open_path_to_run(g)
    os.chmod(g.run, 0o711)
    for name in SOCKETS:
        os.chmod(g.run / name, 0o666)
    try:
        for name in SOCKETS:
            r = probe_as(foreign, g.run / name)
            assert "connect" not in r, (name, r)
            assert r.get("reply") is None, "%s answered a foreign user: %r" % (name, r)
    finally:
        os.chmod(g.run, 0o700)
        for name in SOCKETS:
            os.chmod(g.run / name, 0o600)
    deadline = time.monotonic() + 5
    while g.log_text().count("refused a connection from uid %d" % foreign.pw_uid) < len(SOCKETS):
        assert time.monotonic() < deadline, g.log_tail()
        time.sleep(0.1)
    # every peer link is still up and commands still work
    assert g.wait_peers(timeout=5)
    expect_ok(c.transfer(a, b, 100))
    check_live_and_replay(g)


def test_allow_group_admits_its_members_to_bus_sock_only(fresh_group, users):
    foreign, member, group = users
    g = fresh_group("--allow-group", GROUP)
    open_path_to_run(g)
    st = os.stat(g.run)
    assert stat.S_IMODE(st.st_mode) == 0o710 and st.st_gid == group.gr_gid
    bst = os.stat(g.run / "bus.sock")
    assert stat.S_IMODE(bst.st_mode) == 0o660 and bst.st_gid == group.gr_gid
    # a member (through a supplementary group) is served
    r = probe_as(member, g.run / "bus.sock")
    assert r.get("reply") == "82a2696407a26f6bc3", r  # {"id":7,"ok":true}
    # somebody else is not
    r = probe_as(foreign, g.run / "bus.sock")
    assert r.get("connect") == "PermissionError", r
    # the peers' sockets stay private, and refuse the member even if opened
    for name in SOCKETS[1:]:
        assert stat.S_IMODE(os.stat(g.run / name).st_mode) == 0o600
        r = probe_as(member, g.run / name)
        assert r.get("connect") == "PermissionError", (name, r)
        os.chmod(g.run / name, 0o666)
        try:
            r = probe_as(member, g.run / name)
        finally:
            os.chmod(g.run / name, 0o600)
        assert r.get("reply") is None, "%s answered a group member: %r" % (name, r)
    check_live_and_replay(g)
