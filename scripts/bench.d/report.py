#!/usr/bin/python3
"""report.py: the table of scripts/bench.

Reads scripts/bench's results directory (esbank bench --json outputs, the
timestamped esbankd logs written by group.py, pgbench's outputs and
per-transaction latencies, redis.sh's figures, resident memory samples, the
commands run),
prints one table and, with --doc, rewrites the part of docs/performance.md
between the markers below with the same figures, the machine, the date and
the exact commands.
"""
import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys

BEGIN = "<!-- scripts/bench: begin (generated; edit scripts/bench.d/report.py) -->"
END = "<!-- scripts/bench: end -->"


def read(path, default=""):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def log_lines(path):
    """[(seconds, text)] of a group.py log."""
    out = []
    for line in read(path).splitlines():
        t, _, text = line.partition(" ")
        try:
            out.append((float(t), text))
        except ValueError:
            pass
    return out


def first(lines, pattern):
    """(seconds, match) of the first line matching pattern, or (None, None)."""
    rx = re.compile(pattern)
    for t, text in lines:
        m = rx.search(text)
        if m:
            return t, m
    return None, None


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    k = max(0, min(len(values) - 1, int(round(p / 100.0 * len(values) + 0.5)) - 1))
    return values[k]


# ---- figures -----------------------------------------------------------------

RUNS = ("closed", "open", "single", "bulk")  # the esbank bench runs, results/NAME.json

def bench_json(res, name):
    try:
        return json.loads(read(os.path.join(res, name + ".json")))
    except ValueError:
        return None


def cpu_split(res, name, elapsed_s):
    """{program: percent of one core} over the load phase of an esbank bench
    run (its last elapsed_s seconds), with "other processes" (the rest of the
    machine's busy time) and "idle"."""
    samples = []
    for line in read(os.path.join(res, name + ".samples")).splitlines():
        try:
            samples.append(json.loads(line))
        except ValueError:
            pass
    if len(samples) < 2 or not elapsed_s:
        return {}
    end = samples[-1]
    start = next((x for x in samples if x["t"] >= end["t"] - elapsed_s), samples[0])
    wall = end["t"] - start["t"]
    if wall <= 0:
        return {}
    tck = float(os.sysconf("SC_CLK_TCK"))
    out = {}
    ours = 0
    for k, v in end["ticks"].items():
        d = v - start["ticks"].get(k, v)
        ours += d
        out[k] = 100.0 * d / tck / wall
    # /proc/stat counts in the same ticks, over all CPUs
    out["other processes"] = max(0.0, 100.0 * (end["busy"] - start["busy"] - ours) / tck / wall)
    out["idle"] = 100.0 * ((end["total"] - start["total"]) - (end["busy"] - start["busy"])) / tck / wall
    return out


def replay_figures(path):
    """Start -> live and the bus's replay to the resolver, from a group log."""
    lines = log_lines(path)
    f = {}
    t_live, _ = first(lines, r"info: esbank is live")
    t_log, m_log = first(lines, r"logger +\| info: listening on .*the log holds (\d+) events")
    t_rep, m_rep = first(lines, r"bus +\| info: replaying events (\d+)\.\.(\d+) to the resolver")
    t_bl, m_bl = first(lines, r"bus +\| info: live at seq (\d+)")
    if m_log:
        f["log_events"] = int(m_log.group(1))
        f["logger_open_s"] = t_log
    if t_live is not None:
        f["start_live_s"] = t_live
    if m_rep and m_bl:
        n = int(m_rep.group(2)) - int(m_rep.group(1)) + 1
        f["replayed"] = max(n, 0)
        f["replay_s"] = t_bl - t_rep
    return f


def logger_stats(path):
    _, m = first(log_lines(path), r"logger +\| info: stopped: (\d+) events in (\d+) batches "
                                   r"\(([\d.]+) per fsync, ([\d.]+) ms per write\+fsync\)")
    if not m:
        return None
    return {"events": int(m.group(1)), "batches": int(m.group(2)),
            "per_fsync": float(m.group(3)), "ms_per_fsync": float(m.group(4))}


def pgbench(res, clients):
    out = read(os.path.join(res, "pgbench-%d.out" % clients))
    if not out:
        return None
    m = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    lat = []
    for line in read(os.path.join(res, "pgbench-%d.lat" % clients)).split():
        try:
            lat.append(int(line))
        except ValueError:
            pass
    failed = re.search(r"number of failed transactions: (\d+)", out)
    return {"clients": clients, "tps": float(m.group(1)) if m else None,
            "p50_us": percentile(lat, 50), "p99_us": percentile(lat, 99), "n": len(lat),
            "failed": int(failed.group(1)) if failed else 0}


def machine(data_dir):
    cpu = "?"
    for line in read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = re.search(r"MemTotal:\s+(\d+) kB", read("/proc/meminfo"))
    disk = "?"
    try:
        src, fstype = subprocess.run(["df", "--output=source,fstype", data_dir], check=True,
                                     capture_output=True, text=True).stdout.splitlines()[1].split()
        disk = "%s (%s" % (src, fstype)
        dev = os.path.basename(os.path.realpath(src))
        blk = re.sub(r"p?\d+$", "", dev) if not os.path.exists("/sys/block/" + dev) else dev
        rot = read("/sys/block/%s/queue/rotational" % blk).strip()
        model = read("/sys/block/%s/device/model" % blk).strip()
        if model:
            disk += ", " + model
        if rot in ("0", "1"):
            disk += ", " + ("rotational" if rot == "1" else "non-rotational")
        disk += ")"
    except (OSError, subprocess.CalledProcessError, IndexError, ValueError):
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu,
            "mem_gib": int(mem.group(1)) / 1048576 if mem else None,
            "disk": disk, "kernel": platform.release()}


def git_rev(repo):
    try:
        rev = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], check=True,
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"],
                               check=True, capture_output=True, text=True).stdout.strip()
        return rev + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "?"


# ---- the table ---------------------------------------------------------------

def fmt_int(v):
    return "-" if v is None else "{:,.0f}".format(v)


def fmt_ms(us):
    return "-" if us is None else "%.3f ms" % (us / 1000.0)


def verdict(value, goal, at_least):
    if value is None or goal is None:
        return ""
    return "met" if (value >= goal if at_least else value <= goal) else "MISSED"


def build_rows(a, r):
    """[(figure, measured, goal, verdict, command tags)]."""
    rows = []
    closed, opened, single = r["closed"], r["open"], r["single"]
    pg4, pgm = r["pg"], r["pg_max"]
    c = a.connections

    tps = closed["ops_per_s"] if closed else None
    rows.append(("esbank: durable transfers/s, closed loop, %d conn x %d in flight" % (c, a.inflight),
                 fmt_int(tps), ">= 300,000", verdict(tps, 300000, True), ["group-closed", "closed"]))
    rows.append(("esbank: p99 latency, same run", fmt_ms(closed["latency_us"]["p99"]) if closed else "-",
                 "", "", ["closed"]))
    if pg4:
        rows.append(("pgbench TPC-B: TPS, %d clients" % pg4["clients"], fmt_int(pg4["tps"]), "", "",
                     ["pg-init", "pgbench-%d" % pg4["clients"]]))
        rows.append(("pgbench TPC-B: p99 latency, same run", fmt_ms(pg4["p99_us"]), "", "",
                     ["pgbench-%d" % pg4["clients"]]))
        ratio = tps / pg4["tps"] if tps and pg4["tps"] else None
        rows.append(("ratio esbank / pgbench (%d clients)" % pg4["clients"],
                     "-" if ratio is None else "%.1f x" % ratio, ">= 50 x", verdict(ratio, 50, True),
                     []))
    if pgm:
        ratio = tps / pgm["tps"] if tps and pgm["tps"] else None
        rows.append(("(context) pgbench TPC-B, %d clients: TPS / p99" % pgm["clients"],
                     "%s / %s" % (fmt_int(pgm["tps"]), fmt_ms(pgm["p99_us"])), "", "",
                     ["pgbench-%d" % pgm["clients"]]))
        rows.append(("(context) ratio esbank / pgbench (%d clients)" % pgm["clients"],
                     "-" if ratio is None else "%.1f x" % ratio, "", "", []))
    if opened:
        p99 = opened["latency_us"]["p99"]
        rows.append(("esbank: p99 latency, open loop %s transfers/s" % fmt_int(a.rate),
                     "%s (achieved %s/s)" % (fmt_ms(p99), fmt_int(opened["ops_per_s"])),
                     "<= 2 ms", verdict(p99, 2000, False), ["group-open", "open"]))
    if single:
        p50 = single["latency_us"]["p50"]
        rows.append(("esbank: median latency, 1 conn x 1 in flight",
                     "%.0f us (p99 %s, %s/s)" % (p50, fmt_ms(single["latency_us"]["p99"]),
                                                  fmt_int(single["ops_per_s"])),
                     "<= 150 us", verdict(p50, 150, False), ["group-single", "single"]))
    fs = r.get("fsync")
    if fs:
        rows.append(("(context) the disk: 4 KiB append + fdatasync, p50 / p99",
                     "%.0f us / %.0f us" % (fs["p50"], fs["p99"]), "", "", ["fsync"]))
    rows.extend(issue15_rows(a, r, tps))
    rp = r["replay"]
    if rp.get("start_live_s"):
        rate = rp["log_events"] / rp["start_live_s"] if rp.get("log_events") else None
        rows.append(("replay, %s events (transfers), no snapshot: start -> live" % fmt_int(rp.get("log_events")),
                     "%.2f s = %s events/s" % (rp["start_live_s"], fmt_int(rate)),
                     ">= 2,000,000/s", verdict(rate, 2e6, True), ["replay"]))
    if rp.get("replay_s"):
        rate = rp["replayed"] / rp["replay_s"] if rp["replay_s"] > 0 else None
        rows.append(("replay, the same: bus -> resolver part only",
                     "%.2f s = %s events/s" % (rp["replay_s"], fmt_int(rate)),
                     ">= 2,000,000/s", verdict(rate, 2e6, True), ["replay"]))
    bg = r["big"]
    if bg.get("start_live_s"):
        rate = bg["log_events"] / bg["start_live_s"] if bg.get("log_events") else None
        rows.append(("replay, %s account openings: start -> live" % fmt_int(bg.get("log_events")),
                     "%.2f s = %s events/s" % (bg["start_live_s"], fmt_int(rate)),
                     ">= 2,000,000/s", verdict(rate, 2e6, True), ["genlog", "big"]))
    if bg.get("replay_s"):
        rate = bg["replayed"] / bg["replay_s"] if bg["replay_s"] > 0 else None
        rows.append(("replay, the same: bus -> resolver part only",
                     "%.2f s = %s events/s" % (bg["replay_s"], fmt_int(rate)),
                     ">= 2,000,000/s", verdict(rate, 2e6, True), ["big"]))
    sn = r["snap"]
    if sn:
        total = sn["pack_ms"] + sn["write_ms"]
        rows.append(("snapshot of %s accounts: write (pack + write)" % fmt_int(sn["accounts"]),
                     "%.0f ms (%.0f + %.0f; %.0f MB)" % (total, sn["pack_ms"], sn["write_ms"],
                                                         sn["bytes"] / 1e6),
                     "<= 1,000 ms", verdict(total, 1000, False), ["big"]))
    ld = r["load"]
    if ld.get("resolver_ms") is not None:
        rows.append(("snapshot of %s accounts: load, resolver" % fmt_int(ld["accounts"]),
                     "%.0f ms" % ld["resolver_ms"], "<= 1,000 ms",
                     verdict(ld["resolver_ms"], 1000, False), ["big-restart"]))
    if ld.get("snapshotter_ms") is not None:
        rows.append(("snapshot load, snapshotter (at the same time)", "%.0f ms" % ld["snapshotter_ms"], "", "",
                     ["big-restart"]))
    if ld.get("start_live_s") is not None:
        rows.append(("restart on that snapshot: start -> live", "%.2f s" % ld["start_live_s"], "", "",
                     ["big-restart"]))
    rss = r["rss"]
    n = a.big
    if "empty" in rss and "replayed" in rss:
        per = (rss["replayed"] - rss["empty"]) * 1024.0 / n
        rows.append(("resolver memory per account (VmRSS), after replaying %s" % fmt_int(n),
                     "%.0f B (%.0f MB -> %.0f MB)" % (per, rss["empty"] / 1024.0, rss["replayed"] / 1024.0),
                     "<= 256 B", verdict(per, 256, False), ["group-closed", "big"]))
    if "empty" in rss and "loaded" in rss:
        per = (rss["loaded"] - rss["empty"]) * 1024.0 / n
        rows.append(("resolver memory per account, after loading the snapshot instead",
                     "%.0f B (%.0f MB)" % (per, rss["loaded"] / 1024.0),
                     "<= 256 B", verdict(per, 256, False), ["big-restart"]))
    return rows


def issue15_rows(a, r, tps):
    """The figures of issue 15 that the rows of issue 7 do not hold."""
    rows = []
    bulk, rd, single, fs = r["bulk"], r["redis"], r["single"], r.get("fsync") or {}
    if bulk:
        rows.append(("esbank: bulk transfers/s, \"transfers\" of %s, %d conn x %d requests in flight"
                     % (fmt_int(a.batch), a.connections, a.bulk_inflight),
                     "%s (p99 %s)" % (fmt_int(bulk["ops_per_s"]), fmt_ms(bulk["latency_us"]["p99"])),
                     ">= 1,000,000", verdict(bulk["ops_per_s"], 1e6, True), ["group-bulk", "bulk"]))
    if rd:
        rows.append(("Redis %s AOF always: Lua transfers/s, %d clients, pipeline %d"
                     % (rd["version"], rd["clients"], rd["pipeline"]),
                     "%s (p99 %.3f ms)" % (fmt_int(rd["rps"]), rd["p99_ms"]), "", "", ["redis"]))
        ratio = tps / rd["rps"] if tps and rd["rps"] else None
        rows.append(("ratio esbank closed loop / Redis",
                     "-" if ratio is None else "%.2f x" % ratio, ">= 2.5 x", verdict(ratio, 2.5, True), []))
    b128 = fs.get("b128")
    if b128:
        rows.append(("(context) the disk: 128-byte append + fdatasync, p50 / p99",
                     "%.0f us / %.0f us" % (b128["p50"], b128["p99"]), "", "", ["fsync"]))
        pre = fs.get("b128_prealloc")
        if pre:
            rows.append(("(context) the disk: 128 B into a preallocated, zeroed file + fdatasync, p50 / p99",
                         "%.0f us / %.0f us" % (pre["p50"], pre["p99"]), "", "", ["fsync"]))
        if single:
            ratio = single["latency_us"]["p50"] / b128["p50"]
            rows.append(("esbank: median latency one at a time / 128-byte append + fdatasync median",
                         "%.2f x (%.0f us / %.0f us)" % (ratio, single["latency_us"]["p50"], b128["p50"]),
                         "<= 1.25 x", verdict(ratio, 1.25, False), ["single", "fsync"]))
    rt = r["replay_t"]
    if rt.get("start_live_s") and rt.get("log_events"):
        rate = rt["log_events"] / rt["start_live_s"]
        rows.append(("replay, generated log of %s transfers (%s events), no snapshot: start -> live"
                     % (fmt_int(a.replay_transfers), fmt_int(rt["log_events"])),
                     "%.2f s = %s events/s" % (rt["start_live_s"], fmt_int(rate)),
                     ">= 2,000,000/s", verdict(rate, 2e6, True), ["genlog-transfers", "replay-transfers"]))
    if rt.get("replay_s"):
        rate = rt["replayed"] / rt["replay_s"] if rt["replay_s"] > 0 else None
        rows.append(("replay, the same: bus -> resolver part only",
                     "%.2f s = %s events/s" % (rt["replay_s"], fmt_int(rate)),
                     "", "", ["replay-transfers"]))
    return rows


def gather(a):
    res = a.results
    r = {name: bench_json(res, name) for name in RUNS}
    r["cpu"] = {name: cpu_split(res, name, r[name]["elapsed_s"] if r[name] else None)
                for name in RUNS}
    try:
        r["redis"] = json.loads(read(os.path.join(res, "redis.json")))
    except ValueError:
        r["redis"] = None
    r["replay_t"] = replay_figures(os.path.join(res, "replay-transfers.log"))
    r["pg"] = pgbench(res, a.connections)
    r["pg_max"] = None
    for f in sorted(os.listdir(res)):
        m = re.match(r"pgbench-(\d+)\.out$", f)
        if m and int(m.group(1)) != a.connections:
            r["pg_max"] = pgbench(res, int(m.group(1)))
    r["pg_settings"] = read(os.path.join(res, "pg-settings.txt")).splitlines()
    r["replay"] = replay_figures(os.path.join(res, "replay.log"))
    r["big"] = replay_figures(os.path.join(res, "big.log"))
    r["logger"] = {name: logger_stats(os.path.join(res, "group-%s.log" % name))
                   for name in RUNS}
    try:
        r["fsync"] = json.loads(read(os.path.join(res, "fsync.json")))
    except ValueError:
        r["fsync"] = None
    _, m = first(log_lines(os.path.join(res, "big.log")),
                 r"snapshotter +\| info: snapshot (\d+): (\d+) bytes, pack ([\d.]+) ms, write ([\d.]+) ms")
    r["snap"] = {"accounts": a.big, "seq": int(m.group(1)), "bytes": int(m.group(2)),
                 "pack_ms": float(m.group(3)), "write_ms": float(m.group(4))} if m else None
    lines = log_lines(os.path.join(res, "big-restart.log"))
    _, m1 = first(lines, r"resolver +\| info: loaded the snapshot at \d+ \((\d+) accounts\) in ([\d.]+) ms")
    _, m2 = first(lines, r"snapshotter +\| info: loaded snapshot \d+ \((\d+) accounts\) in ([\d.]+) ms")
    t_live, _ = first(lines, r"info: esbank is live")
    r["load"] = {"accounts": int(m1.group(1)) if m1 else a.big,
                 "resolver_ms": float(m1.group(2)) if m1 else None,
                 "snapshotter_ms": float(m2.group(2)) if m2 else None,
                 "start_live_s": t_live}
    r["rss"] = {}
    for line in read(os.path.join(res, "rss.txt")).splitlines():
        f = line.split()
        if len(f) == 2 and f[1].isdigit():
            r["rss"][f[0]] = int(f[1])
    r["commands"] = []
    for line in read(os.path.join(res, "commands.txt")).splitlines():
        tag, _, cmd = line.partition("\t")
        r["commands"].append((tag, cmd))
    return r


def text_table(rows):
    w0 = max(len(x[0]) for x in rows)
    w1 = max(len(x[1]) for x in rows)
    w2 = max(len(x[2]) for x in rows)
    out = []
    head = ("figure", "measured", "goal", "")
    out.append("%-*s  %-*s  %-*s  %s" % (w0, head[0], w1, head[1], w2, head[2], head[3]))
    out.append("-" * (w0 + w1 + w2 + 14))
    for f, v, g, ok, _ in rows:
        out.append("%-*s  %-*s  %-*s  %s" % (w0, f, w1, v, w2, g, ok))
    return "\n".join(out)


def shorten(cmd, a):
    """The command with the temporary paths made readable."""
    cmd = cmd.replace(a.build + "/", "build/")
    cmd = cmd.replace(a.data, "$W").strip()
    cmd = re.sub(r"/usr/lib/postgresql/\d+/bin/", "", cmd)
    cmd = re.sub(r"/usr/bin/python3 \S*/scripts/bench.d/", "scripts/bench.d/", cmd)
    cmd = re.sub(r"^\S*/scripts/bench.d/", "scripts/bench.d/", cmd)
    return cmd


def markdown(a, r, rows, m):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = []
    out.append("Measured %s by `scripts/bench --duration %g` on %d CPUs (%s), %.0f GiB RAM, "
               "disk %s, Linux %s; esbank at %s." % (now, a.duration, m["nproc"], m["cpu"],
                                                      m["mem_gib"] or 0, m["disk"], m["kernel"],
                                                      git_rev(os.path.dirname(os.path.dirname(
                                                          os.path.abspath(__file__))))))
    out.append("")
    out.append("| figure | measured | goal | | commands |")
    out.append("|---|---|---|---|---|")
    tags = []
    for _, cmd_tag in [(None, t) for t, _ in r["commands"]]:
        if cmd_tag not in tags:
            tags.append(cmd_tag)
    for f, v, g, ok, t in rows:
        refs = ", ".join("[%d]" % (tags.index(x) + 1) for x in t if x in tags)
        out.append("| %s | %s | %s | %s | %s |" % (f.strip(), v, g, "**missed**" if ok == "MISSED" else ok,
                                                    refs))
    out.append("")
    out.append("Commands (`$W` is the work directory, `build/` the build directory; the esbank "
               "group is stopped with SIGTERM between phases):")
    out.append("")
    seen = set()
    for tag, cmd in r["commands"]:
        if tag in seen:
            continue
        seen.add(tag)
        out.append("%d. `%s`: `%s`" % (tags.index(tag) + 1, tag, shorten(cmd, a)))
    out.append("")
    out.extend(details(a, r))
    return "\n".join(out)


def details(a, r):
    out = ["Details of this run:", ""]
    busy = read(os.path.join(a.results, "busy-before.txt")).strip()
    if busy.isdigit():
        out.append("- In the second before the start, the machine's CPUs were %s%% busy with "
                   "other processes%s." % (busy, " (figures below are skewed by them)"
                                           if int(busy) >= 20 else ""))
    for name, what in (("closed", "closed loop"), ("open", "open loop"), ("single", "one at a time"),
                       ("bulk", "bulk")):
        cpu = r["cpu"].get(name)
        if cpu:
            parts = ", ".join("%s %.0f%%" % (k, v) for k, v in
                              sorted(cpu.items(), key=lambda kv: -kv[1])
                              if v >= 0.5 and k not in ("other processes", "idle"))
            out.append("- CPU during the %s run, in percent of one core (%d cores = %d%%): %s; "
                       "processes outside the benchmark %.0f%%; idle %.0f%%." %
                       (what, os.cpu_count(), 100 * os.cpu_count(), parts,
                        cpu.get("other processes", 0), cpu.get("idle", 0)))
    for name in RUNS:
        lg = r["logger"].get(name)
        if lg:
            out.append("- The logger in the `%s` group (setup included): %s events in %s batches, "
                       "%.1f events per fdatasync, %.3f ms per write + fdatasync." %
                       (name, fmt_int(lg["events"]), fmt_int(lg["batches"]), lg["per_fsync"],
                        lg["ms_per_fsync"]))
    for k in RUNS:
        j = r[k]
        if j:
            lat = j["latency_us"]
            out.append("- `%s`: %s transfers in %.1f s, outcomes %s; latency p50 %s, p90 %s, "
                       "p99 %s, p99.9 %s, max %s." %
                       (k, fmt_int(j["requests"]), j["elapsed_s"], json.dumps(j["outcomes"]),
                        fmt_ms(lat["p50"]), fmt_ms(lat["p90"]), fmt_ms(lat["p99"]),
                        fmt_ms(lat["p99.9"]), fmt_ms(lat["max"])))
    for pg in (r["pg"], r["pg_max"]):
        if pg:
            out.append("- pgbench, %d clients: %s transactions logged, p50 %s, p99 %s, %d failed." %
                       (pg["clients"], fmt_int(pg["n"]), fmt_ms(pg["p50_us"]), fmt_ms(pg["p99_us"]),
                        pg["failed"]))
    rd = r["redis"]
    if rd:
        out.append("- Redis %s: %s EVALSHA transfers, p50 %.3f ms, p99 %.3f ms (redis-benchmark's, "
                   "from each call's send); the balances summed the same after; server `%s`, "
                   "load `%s`." % (rd["version"], fmt_int(rd["requests"]), rd["p50_ms"], rd["p99_ms"],
                                   rd["server"], rd["bench"]))
    if r["pg_settings"]:
        out.append("- PostgreSQL settings: %s." % ", ".join("`%s`" % s for s in r["pg_settings"]))
    for key, what in (("replay", "recovery of the load runs' log"), ("big", "replay of the generated log"),
                      ("replay_t", "replay of the generated log of transfers")):
        rp = r[key]
        if rp.get("logger_open_s") is not None:
            out.append("- %s: the logger had opened and checked the log (%s events) %.2f s after "
                       "the start." % (what.capitalize(), fmt_int(rp.get("log_events")),
                                       rp["logger_open_s"]))
    return out


def rewrite_doc(path, body):
    text = read(path)
    block = BEGIN + "\n" + body + "\n" + END
    if BEGIN in text and END in text:
        head = text[:text.index(BEGIN)]
        tail = text[text.index(END) + len(END):]
        text = head + block + tail
    else:
        text = (text.rstrip("\n") + "\n\n" if text else "# Performance\n\n") + block + "\n"
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--results", required=True)
    p.add_argument("--data", required=True, help="the work directory")
    p.add_argument("--build", required=True)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--connections", type=int, required=True)
    p.add_argument("--inflight", type=int, required=True)
    p.add_argument("--rate", type=float, required=True)
    p.add_argument("--accounts", type=int, required=True)
    p.add_argument("--big", type=int, required=True)
    p.add_argument("--pg-scale", type=int, required=True)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--bulk-inflight", type=int, default=8)
    p.add_argument("--replay-transfers", type=int, default=4000000)
    p.add_argument("--doc")
    a = p.parse_args()
    r = gather(a)
    rows = build_rows(a, r)
    m = machine(a.data)
    print("esbank performance, %s; %d CPUs (%s), disk %s" %
          (datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), m["nproc"], m["cpu"], m["disk"]))
    print()
    print(text_table(rows))
    print()
    print("\n".join(details(a, r)))
    if a.doc:
        rewrite_doc(a.doc, markdown(a, r, rows, m))
        print("\nscripts/bench: wrote the table into %s" % a.doc)
    bad = [x for x in rows if x[3] == "MISSED"]
    return 0


if __name__ == "__main__":
    sys.exit(main())
