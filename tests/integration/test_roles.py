"""test_roles - the bus's roles in replication (issue 13, docs/replication.md):
status's role, the op promote on a group that is not a standby, esbankd's
replication flags, and a primary replicating to a real one-node JetStream
nats-server (skipped while the build has no esbank-replicator)."""

import subprocess

import pytest

from natscluster import nats_one  # noqa: F401 (a fixture)
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


@pytest.fixture
def nats(nats_one):
    """A one-node JetStream nats-server; skipped without a replicator build."""
    if not _replicator().exists():
        pytest.skip("no esbank-replicator in this build")
    return nats_one


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
