# scripts/bench.d/nats.sh - sourced by scripts/run-cluster and scripts/bench:
# three nats-servers with JetStream, one cluster on loopback
# (docs/replication.md). Node i (1..3) listens for clients on
# 127.0.0.1:${nats_client_ports[i-1]} and for routes on
# ${nats_route_ports[i-1]}, keeps its store in DIR/n$i and logs to
# DIR/n$i.log; its config, DIR/n$i.conf:
#
#   server_name: n1
#   listen: 127.0.0.1:4222
#   jetstream { store_dir: "DIR/n1" }
#   cluster {
#     name: esbank
#     listen: 127.0.0.1:6222
#     routes: [ nats-route://127.0.0.1:6223, nats-route://127.0.0.1:6224 ]
#   }
#
# The caller may set nats_client_ports / nats_route_ports before calling
# nats_start. nats_pids holds the servers' pids (stop them by pid).

NATS_SERVER="${ESBANK_NATS_SERVER:-nats-server}"
NATS_NODES=3
NATS_READY_TRIES=300 # x 0.1 s: each node answers on its client port
nats_client_ports=(4222 4223 4224)
nats_route_ports=(6222 6223 6224)
nats_pids=()

# nats_conf DIR I: the config of node I.
nats_conf() {
	local dir="$1" i="$2" routes="" j
	for ((j = 0; j < NATS_NODES; j++)); do
		[ "$j" -eq "$((i - 1))" ] ||
			routes+="${routes:+, }nats-route://127.0.0.1:${nats_route_ports[$j]}"
	done
	cat <<CONF
server_name: n$i
listen: 127.0.0.1:${nats_client_ports[$((i - 1))]}
jetstream { store_dir: "$dir/n$i" }
cluster {
  name: esbank
  listen: 127.0.0.1:${nats_route_ports[$((i - 1))]}
  routes: [ $routes ]
}
CONF
}

# nats_urls: the client URLs, comma-separated (esbankd --replicate/--follow).
nats_urls() {
	local i out=""
	for ((i = 0; i < NATS_NODES; i++)); do
		out+="${out:+,}nats://127.0.0.1:${nats_client_ports[$i]}"
	done
	echo "$out"
}

# nats_start DIR: writes the configs, starts the nodes in the background
# (pids in nats_pids), returns once each accepts connections; 1 if not.
nats_start() {
	local dir="$1" i tries
	mkdir -p "$dir"
	dir="$(cd "$dir" && pwd)"
	for ((i = 1; i <= NATS_NODES; i++)); do
		mkdir -p "$dir/n$i"
		nats_conf "$dir" "$i" >"$dir/n$i.conf"
		"$NATS_SERVER" -c "$dir/n$i.conf" >>"$dir/n$i.log" 2>&1 &
		nats_pids+=($!)
	done
	for ((i = 0; i < NATS_NODES; i++)); do
		tries=0
		until (exec 3<>"/dev/tcp/127.0.0.1/${nats_client_ports[$i]}") 2>/dev/null; do
			tries=$((tries + 1))
			[ "$tries" -lt "$NATS_READY_TRIES" ] || return 1
			sleep 0.1
		done
	done
}

# nats_stop: SIGTERM to each node by pid, then waits for them.
nats_stop() {
	local pid
	for pid in "${nats_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${nats_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	nats_pids=()
}
