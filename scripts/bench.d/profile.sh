#!/usr/bin/env bash
# profile.sh BUILD [OUT] - where the CPU goes in each load run of scripts/bench.
#
# For each run (closed loop 4 x 256, open loop at 100,000/s, one at a time,
# bulk "transfers" of 1,000 with 4 x 8 in flight): a fresh group from BUILD
# in a new /var/tmp directory, 9 s of `esbank bench --mix transfer=100
# --accounts 1000`, and `perf record -e cpu-clock` of the group's processes
# for 5 s in its middle (software sampling: this kind of virtual machine has
# no hardware counters). Prints, per run, the share of the samples of each
# process and each process's top symbols (percent of that process's
# samples). OUT (default: a new /var/tmp/esbank-profile.XXXXXX) keeps the
# perf.data files for `perf report -i OUT/RUN.perf`.
set -euo pipefail
if [ $# -lt 1 ] || [ "$1" = --help ]; then
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
  [ $# -ge 1 ] && exit 0 || exit 100
fi
B=$1
OUT=${2:-$(mktemp -d /var/tmp/esbank-profile.XXXXXX)}
TOP=8            # symbols shown per process
RECORD_S=5       # seconds sampled
WARMUP_S=1       # seconds of load before sampling, once the accounts are set up
ACCOUNTS=1000    # each is opened and verified first: 2 events each
mkdir -p "$OUT"
command -v perf >/dev/null || { echo "profile.sh: perf is not installed (apt-get install linux-perf)" >&2; exit 100; }
declare -A MODES=(
  [closed]="--connections 4 --inflight 256"
  [open]="--connections 4 --inflight 256 --rate 100000"
  [single]="--connections 1 --inflight 1"
  [bulk]="--connections 4 --inflight 8 --batch 1000"
)
for m in closed open single bulk; do
  T=$(mktemp -d /var/tmp/esbank-profile-run.XXXXXX)
  mkdir -p "$T/data" "$T/run"
  "$B/supervisor/esbankd" --data "$T/data" --run "$T/run" --http off --pwhash-cost min >"$T/log" 2>&1 &
  group=$!
  for _ in $(seq 1 200); do grep -q 'esbank is live' "$T/log" && break; sleep 0.1; done
  # shellcheck disable=SC2086 # the mode's options are words
  "$B/client/esbank" --run "$T/run" --json bench --data "$T/data" ${MODES[$m]} \
    --mix transfer=100 --accounts "$ACCOUNTS" --duration 9 >"$T/bench.json" 2>"$T/bench.err" &
  load=$!
  # the set-up (openings, their mails, verifications) is not what is profiled
  until [ "$("$B/client/esbank" --run "$T/run" --json status 2>/dev/null |
             python3 -c 'import json,sys; print(json.load(sys.stdin).get("last_seq", 0))' 2>/dev/null ||
             echo 0)" -gt $((2 * ACCOUNTS + 100)) ]; do sleep 0.1; done
  sleep "$WARMUP_S"
  perf record -q -e cpu-clock -p "$(pgrep -P "$group" | paste -sd,)" -o "$OUT/$m.perf" \
    -- sleep "$RECORD_S" >/dev/null 2>&1 || true
  wait "$load" || true
  kill "$group"; wait "$group" 2>/dev/null || true
  echo "== $m: $(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('%.0f transfers/s, p50 %.0f us, p99 %.0f us' % (d['ops_per_s'], d['latency_us']['p50'], d['latency_us']['p99']))" "$T/bench.json")"
  echo "   samples by process: $(perf report -i "$OUT/$m.perf" --no-children --sort comm --stdio 2>/dev/null \
    | grep -E '^ +[0-9]' | head -6 | awk '{print $2, $1}' | paste -sd, | sed 's/,/, /g')"
  for c in esbank-logger esbank-resolver esbank-bus esbank-snapshot; do
    echo "   $c: $(perf report -i "$OUT/$m.perf" --comm "$c" --percentage relative --no-children --stdio 2>/dev/null \
      | grep -E '^ +[0-9]' | head -"$TOP" | awk '{print $NF, $1}' | paste -sd, | sed 's/,/, /g')"
  done
  rm -rf "$T"
done
echo "perf data: $OUT"
