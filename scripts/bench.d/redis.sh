#!/usr/bin/env bash
# redis.sh DIR SECONDS: the Redis anchor of scripts/bench. Starts Debian's
# redis-server (7) from DIR (which it creates) on a Unix socket, with
# appendonly yes, appendfsync always (every write is fdatasync'd before its
# reply) and no RDB saves; opens 1,000 accounts (keys acct:000000000000 ..
# acct:000000000999, 10^12 cents each); loads the transfer script below; then
# redis-benchmark with 50 clients and a pipeline of 16 calls it as EVALSHA on
# two random accounts and a random amount (0..999 cents), for about SECONDS
# (a 1-second calibration run sizes the request count). Checks that the
# balances still sum to what they were. Prints one JSON object: requests, rps,
# p50/p99 latency in ms (redis-benchmark's: from each call's send), the
# commands, redis-server's version. Stops redis-server; DIR stays.
set -euo pipefail
dir="$1" secs="$2"
accounts=1000
clients=50
pipeline=16
mkdir -p "$dir"
sock="$dir/redis.sock"

# The transfer: two balances, check funds, move. Returns the sender's balance
# after, or an error reply. The same account on both sides moves nothing.
script='local a = tonumber(redis.call("GET", KEYS[1]))
local amount = tonumber(ARGV[1])
if a == nil or redis.call("EXISTS", KEYS[2]) == 0 then return redis.error_reply("not_found") end
if KEYS[1] == KEYS[2] or amount < 1 then return a end
if a < amount then return redis.error_reply("insufficient_funds") end
redis.call("DECRBY", KEYS[1], amount)
redis.call("INCRBY", KEYS[2], amount)
return a - amount'

server=(redis-server --port 0 --unixsocket "$sock" --dir "$dir" --appendonly yes
	--appendfsync always --save "" --daemonize no --logfile "$dir/redis.log")
"${server[@]}" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
cli=(redis-cli -s "$sock")
for _ in $(seq 200); do "${cli[@]}" ping >/dev/null 2>&1 && break; sleep 0.05; done
for i in $(seq 0 $((accounts - 1))); do printf 'SET acct:%012d 1000000000000\n' "$i"; done |
	"${cli[@]}" --pipe >/dev/null
sha="$("${cli[@]}" script load "$script")"
sum() { "${cli[@]}" eval 'local s = 0 for _, k in ipairs(redis.call("KEYS", "acct:*")) do s = s + tonumber(redis.call("GET", k)) end return s' 0; }
before="$(sum)"
bench() { # bench N: redis-benchmark's CSV line of N transfers
	redis-benchmark -s "$sock" -c "$clients" -P "$pipeline" -r "$accounts" -n "$1" --csv \
		evalsha "$sha" 2 acct:__rand_int__ acct:__rand_int__ __rand_int__ | tail -1
}
n=$(($(bench 50000 | awk -F'"' '{print int($4)}') * secs))
[ "$n" -ge 50000 ] || n=50000
line="$(bench "$n")"
after="$(sum)"
[ "$before" = "$after" ] || { echo "redis.sh: balances sum to $after, not $before" >&2; exit 1; }
version="$(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p')"
echo "$line" | awk -F'"' -v n="$n" -v v="$version" -v c="$clients" -v p="$pipeline" \
	-v cmd="redis-benchmark -s \$W/redis/redis.sock -c $clients -P $pipeline -r $accounts -n $n --csv evalsha SHA 2 acct:__rand_int__ acct:__rand_int__ __rand_int__" \
	-v srv="redis-server --unixsocket \$W/redis/redis.sock --appendonly yes --appendfsync always --save ''" \
	'{printf "{\"requests\": %d, \"rps\": %s, \"p50_ms\": %s, \"p99_ms\": %s, \"clients\": %d, \"pipeline\": %d, \"version\": \"%s\", \"server\": \"%s\", \"bench\": \"%s\"}\n", n, $4, $10, $14, c, p, v, srv, cmd}'
"${cli[@]}" shutdown nosave >/dev/null 2>&1 || true
