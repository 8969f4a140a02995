"""test_roles - the bus's roles in replication (issue 13, docs/replication.md):
status's role, the op promote on a group that is not a standby, esbankd's
replication flags, and a primary replicating to a real one-node JetStream
nats-server (skipped while the build has no esbank-replicator)."""

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import Group, build_dir, esbankd_path, expect_err, expect_ok, open_account, wait_for


def test_single_status_role(client):
    st = expect_ok(client.call("status"))
    assert st["role"] == "single", st
    assert "replicated_seq" not in st and "stream" not in st, st
    assert "replicator" not in st["peers"], st


def test_promote_on_single_is_not_standby(client):
    expect_err(client.call("promote"), "not_standby")
    # the group still takes commands afterwards
    open_account(client)


def test_replicate_and_follow_exclude_each_other(tmp_path):
    r = subprocess.run([str(esbankd_path()), "--data", str(tmp_path / "d"), "--run",
                        str(tmp_path / "r"), "--replicate", "nats://127.0.0.1:1",
                        "--follow", "nats://127.0.0.1:1"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 100, r
    assert "exclude" in r.stderr + r.stdout


def _replicator():
    return build_dir() / "replicator" / "esbank-replicator"


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def nats(tmp_path):
    """A one-node JetStream nats-server on a free loopback port, stopped by pid."""
    if not _replicator().exists() or not shutil.which("nats-server"):
        pytest.skip("no esbank-replicator in this build, or no nats-server")
    port = _free_port()
    store = tmp_path / "js"
    proc = subprocess.Popen(["nats-server", "-js", "-sd", str(store), "-p", str(port),
                             "-a", "127.0.0.1"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)

    def up():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return False

    wait_for(up, timeout=10, what="nats-server listening")
    yield "nats://127.0.0.1:%d" % port
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def test_primary_replicates_before_answering(nats, fresh_group):
    g = fresh_group("--replicate", nats, "--replicas", "1", "--stream", "ROLES")
    c = g.client()
    acct = open_account(c)
    st = expect_ok(c.call("status"))
    assert st["role"] == "primary", st
    seq = st["durable_seq"]
    assert seq >= 1 and st["replicated_seq"] >= seq, st
    assert st["stream"]["name"] == "ROLES" and st["stream"]["replicas"] == 1, st
    assert st["peers"]["replicator"]["connected"] is True, st
    expect_err(c.call("promote"), "not_standby")
    assert expect_ok(c.call("get_account", account=acct))["account"] == acct
    c.close()
