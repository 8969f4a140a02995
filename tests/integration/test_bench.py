"""esbank bench against the real group: its figures add up and its JSON
report keeps its shape (client/bench/report.c documents the format)."""

import json
import subprocess

from conftest import build_dir, expect_ok

BENCH_TIMEOUT_S = 120
COUNT = 2000
ACCOUNTS = 20


def bench(group, *args):
    argv = [str(build_dir() / "client" / "esbank"), "--run", str(group.run), "--json",
            "bench", "--data", str(group.data)] + list(args)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=BENCH_TIMEOUT_S)
    return r.returncode, [json.loads(line) for line in r.stdout.splitlines() if line.strip()], r


def test_bench_count_json_figures_add_up(group):
    c = group.client()
    before = expect_ok(c.status())["last_seq"]
    rc, objs, r = bench(group, "--count", str(COUNT), "--accounts", str(ACCOUNTS),
                        "--connections", "2", "--inflight", "16",
                        "--mix", "transfer=80,withdraw=10,get_account=10")
    assert rc == 0, r.stderr
    rep = objs[-1]
    assert rep["mode"] == "closed" and rep["requests"] == COUNT, rep
    assert sum(rep["outcomes"].values()) == COUNT, rep
    assert sum(o["count"] for o in rep["ops"].values()) == COUNT, rep
    assert set(rep["outcomes"]) <= {"ok", "insufficient_funds"}, rep
    lat = rep["latency_us"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99.9"] <= lat["max"], lat
    after = expect_ok(c.status())["last_seq"]
    # each account is opened and verified (two events); then each ok transfer
    # or withdrawal is one event, and nothing else is
    moved = sum(rep["ops"][op]["outcomes"].get("ok", 0) for op in ("transfer", "withdraw"))
    assert after - before == 2 * ACCOUNTS + moved, (before, after, rep)


def test_bench_setup_only_prints_the_accounts(group):
    rc, objs, r = bench(group, "--setup-only", "--accounts", "5")
    assert rc == 0, r.stderr
    accounts = [a for o in objs for a in (o.get("accounts") or [])]
    assert len(accounts) == 5 and len(set(accounts)) == 5, objs
    c = group.client()
    for a in accounts:
        acct = a if isinstance(a, str) else a.get("account")
        assert expect_ok(c.call("get_account", {"account": acct}))["verified"] is True
