"""Metrics from the whole group (issue 14 item 6): `esbank metrics` shows every
program's figures in the
Prometheus text format, with plausible values after some load, and
`promtool check metrics` accepts both."""
import re
import shutil
import subprocess

import pytest

from conftest import Group, _active_groups, _drop_group, build_dir, expect_ok, open_account

ACCOUNTS = 6
TRANSFERS = 40

FAMILIES = [
    "esbank_build_info",
    "esbank_bus_state", "esbank_bus_durable_seq", "esbank_bus_resolver_hwm",
    "esbank_bus_log_fault", "esbank_bus_peer_connected", "esbank_bus_figures_answered",
    "esbank_restarts_total", "esbank_program_running",
    "esbank_logger_events_appended_total", "esbank_logger_batches_appended_total",
    "esbank_logger_fsync_seconds", "esbank_logger_events_per_fsync",
    "esbank_logger_fault", "esbank_logger_durable_seq",
    "esbank_resolver_accounts", "esbank_resolver_keys",
    "esbank_resolver_replayed_events_total",
    "esbank_snapshotter_snapshots_total", "esbank_snapshotter_snapshot_seq",
    "esbank_mailer_queued_total", "esbank_mailer_sent_total", "esbank_mailer_retried_total",
    "esbank_mailer_dead_total",
]


def parse(text):
    """{sample name with labels: value} and the set of TYPE'd families."""
    samples, families = {}, set()
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)$", line)
        if m:
            families.add(m.group(1))
        elif line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples, families


def promtool_check(text):
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool not installed (Debian's prometheus; scripts/deps)")
    p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    # Lint findings (e.g. a counter's name) are reported too, exit 3; format errors exit 1.
    assert p.returncode == 0, "promtool check metrics:\n%s%s" % (p.stdout, p.stderr)


def esbank_metrics(g):
    exe = build_dir() / "client" / "esbank"
    p = subprocess.run([str(exe), "--run", str(g.run), "metrics"], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """A group after some load."""
    g = Group(tmp_path_factory.mktemp("metrics"))
    _active_groups.append(g)
    g.start()
    c = g.client()
    accts = [open_account(c) for _ in range(ACCOUNTS)]
    for a in accts:
        g.wait_code(a)  # every opening mail delivered
    for i in range(TRANSFERS):
        c.call("transfer", {"from": accts[i % ACCOUNTS], "to": accts[(i + 1) % ACCOUNTS],
                            "amount": 1})
    durable = expect_ok(c.status())["durable_seq"]
    c.close()
    yield g, durable
    _drop_group(g)


def check_figures(text, durable):
    samples, families = parse(text)
    missing = [f for f in FAMILIES if f not in families]
    assert not missing, "families missing: %s\n%s" % (missing, text)
    assert samples["esbank_logger_events_appended_total"] == durable
    assert samples["esbank_logger_durable_seq"] == durable
    assert samples["esbank_bus_durable_seq"] == durable
    assert samples["esbank_resolver_accounts"] == ACCOUNTS
    assert samples["esbank_resolver_last_seq"] == durable
    batches = samples["esbank_logger_batches_appended_total"]
    assert 0 < batches <= durable
    assert samples["esbank_logger_fsync_seconds_count"] == batches
    assert samples['esbank_logger_fsync_seconds_bucket{le="+Inf"}'] == batches
    assert samples["esbank_logger_fsync_seconds_sum"] > 0
    assert samples["esbank_logger_events_per_fsync_sum"] == durable
    assert samples["esbank_logger_fault"] == 0
    assert samples["esbank_mailer_sent_total"] >= ACCOUNTS
    assert samples["esbank_mailer_dead_total"] == 0
    assert samples['esbank_bus_state{state="live"}'] == 1
    for peer in ("resolver", "logger", "snapshotter", "mailer"):
        assert samples['esbank_bus_figures_answered{peer="%s"}' % peer] == 1, peer
    assert samples['esbank_restarts_total{program="logger"}'] == 0
    assert any(k.startswith("esbank_build_info{version=") for k in samples)


def test_esbank_metrics_shows_every_program(loaded):
    g, durable = loaded
    text = esbank_metrics(g)
    check_figures(text, durable)
    promtool_check(text)



def type_lines(text):
    return re.findall(r"^# TYPE (\S+) ", text, re.M)


def test_gateway_metrics_carry_the_groups(loaded, tmp_path):
    """esbank-http's /metrics (--metrics address): its own families, then the
    group's (the op metrics), no family twice, and promtool accepts the page."""
    g, durable = loaded
    from test_http import curl, free_port, need, stop, wait_for
    gateway = build_dir() / "http" / "esbank-http"
    need(gateway)
    mbase = "127.0.0.1:%d" % free_port()
    log = open(tmp_path / "http.log", "wb")
    p = subprocess.Popen([str(gateway), "--http", "127.0.0.1:%d" % free_port(),
                          "--metrics", mbase, "--data", str(tmp_path / "data"),
                          "--run", str(g.run)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "esbank_bus_up 1" in curl("http://" + mbase, "GET", "/metrics").body,
                 what="the gateway's scrape reaching the bus")
        text = curl("http://" + mbase, "GET", "/metrics").body
    finally:
        stop(p)
        log.close()
    out = (tmp_path / "http.log").read_text(errors="replace")
    assert "Sanitizer" not in out and "runtime error" not in out, out
    assert p.returncode == 0, out
    check_figures(text, durable)
    samples, families = parse(text)
    for f in ("esbank_http_request_duration_seconds", "esbank_http_connections",
              "esbank_bus_connected", "esbank_bus_up", "esbank_bus_pending_requests"):
        assert f in families, f
    assert samples["esbank_bus_up"] == 1
    types = type_lines(text)
    assert len(types) == len(set(types)), sorted(t for t in types if types.count(t) > 1)
    promtool_check(text)
