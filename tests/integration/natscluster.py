"""natscluster - a real three-node nats-server cluster with JetStream, on free
loopback ports, for the replication tests (test_replication.py).

Each node is one nats-server process with its own directory under the test's
tmp_path: its config file (written here), its JetStream store and its log.
A node's config:

    server_name: n1
    listen: 127.0.0.1:<client port>
    http: 127.0.0.1:<monitoring port>      (GET /jsz: the meta leader)
    jetstream { store_dir: <dir>/js, max_memory_store: 64MB, max_file_store: 1GB }
    cluster { name: <cluster>, listen: 127.0.0.1:<route port>,
              routes: [nats-route://127.0.0.1:<route port of each other node>] }

Processes are started in their own session and stopped by pid only: SIGTERM,
then SIGKILL after a timeout. kill9() / restart() act on one node (the same
config and store dir), e.g. the leader of a stream.

The cluster is asked about streams through the JetStream API over a minimal
NATS client written here (no NATS package is needed): stream info (leader,
last sequence, replicas) and single messages by sequence (headers and data).
"""

import base64
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from conftest import free_port

NATS_SERVER = os.environ.get("ESBANK_NATS_SERVER", "/usr/sbin/nats-server")
NODES_DEFAULT = 3
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 5.0
POLL_TIMEOUT_S = 1.0  # a stream without a leader does not answer: poll again
PLACEMENT_NOT_READY = 10005  # JetStream's "no suitable peers for placement"
CREATE_TIMEOUT_S = 30.0  # a stream's creation, asked again meanwhile (create_stream)
CREATE_REQUEST_TIMEOUT_S = 10.0  # one attempt's wait for the answer
LINE_BYTES_MAX = 4096  # a protocol line of the NATS server (INFO is the longest)


def nats_server_available():
    return os.access(NATS_SERVER, os.X_OK)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class NatsNode:
    """One nats-server process of the cluster."""

    def __init__(self, base, name, cluster_name):
        self.name = name
        self.cluster_name = cluster_name
        self.dir = Path(base) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.store = self.dir / "js"
        self.conf = self.dir / "nats.conf"
        self.log_path = self.dir / "nats.log"
        self.port = free_port()
        self.route_port = free_port()
        self.http_port = free_port()
        self.proc = None
        self.starts = 0

    @property
    def url(self):
        return "nats://127.0.0.1:%d" % self.port

    def write_conf(self, peers):
        routes = ", ".join("nats-route://127.0.0.1:%d" % p.route_port for p in peers
                           if p is not self)
        self.conf.write_text(
            "server_name: %s\n"
            "listen: 127.0.0.1:%d\n"
            "http: 127.0.0.1:%d\n"
            "jetstream {\n"
            "  store_dir: \"%s\"\n"
            "  max_memory_store: 64MB\n"
            "  max_file_store: 1GB\n"
            "}\n"
            "cluster {\n"
            "  name: %s\n"
            "  listen: 127.0.0.1:%d\n"
            "  routes: [%s]\n"
            "}\n" % (self.name, self.port, self.http_port, self.store, self.cluster_name,
                     self.route_port, routes))

    def start(self):
        assert self.proc is None, "%s is running" % self.name
        self.starts += 1
        with open(self.log_path, "ab") as logf:
            logf.write(b"\n===== start %d\n" % self.starts)
            logf.flush()
            self.proc = subprocess.Popen([NATS_SERVER, "-c", str(self.conf)],
                                         stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=STOP_TIMEOUT_S):
        """SIGTERM, then SIGKILL after timeout; by pid. Returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        rc, self.proc = self.proc.returncode, None
        return rc

    def kill9(self):
        """SIGKILL the node at once (no clean shutdown); waits for it."""
        if self.proc is None:
            return
        pid = self.proc.pid
        self.proc.kill()
        self.proc.wait(10)
        self.proc = None
        assert not _alive(pid)

    def jsz(self):
        """The node's /jsz monitoring answer, or None."""
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/jsz" % self.http_port,
                                        timeout=1.0) as r:
                return json.loads(r.read())
        except (OSError, ValueError):
            return None

    def meta_leader(self):
        j = self.jsz()
        return ((j or {}).get("meta_cluster") or {}).get("leader") or None

    def log_tail(self, lines=40):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class NatsError(Exception):
    pass


class NatsConn:
    """A minimal NATS client: request/reply only, headers understood."""

    def __init__(self, url, timeout=REQUEST_TIMEOUT_S):
        host, port = url.rsplit("//", 1)[-1].rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.buf = b""
        self.inbox = "_INBOX.%s" % uuid.uuid4().hex
        line = self._line()
        if not line.startswith(b"INFO "):
            raise NatsError("no INFO from %s: %r" % (url, line))
        opts = {"verbose": False, "pedantic": False, "headers": True, "no_responders": True,
                "protocol": 1, "name": "esbank-tests"}
        self._send(b"CONNECT %s\r\nSUB %s.* 1\r\nPING\r\n"
                   % (json.dumps(opts).encode(), self.inbox.encode()))
        while True:
            line = self._line()
            if line == b"PONG":
                break
            if line.startswith(b"-ERR"):
                raise NatsError(line.decode(errors="replace"))

    def close(self):
        self.sock.close()

    def _send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise NatsError("connection closed")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            if len(self.buf) > LINE_BYTES_MAX:
                raise NatsError("protocol line too long")
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _bytes(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _next_msg(self):
        """(headers bytes, payload bytes) of the next message on the inbox."""
        while True:
            line = self._line()
            if line == b"PING":
                self._send(b"PONG\r\n")
            elif line.startswith(b"MSG "):
                return b"", self._bytes(int(line.split()[-1]))
            elif line.startswith(b"HMSG "):
                parts = line.split()
                hlen, total = int(parts[-2]), int(parts[-1])
                data = self._bytes(total)
                return data[:hlen], data[hlen:]
            elif line.startswith(b"-ERR"):
                raise NatsError(line.decode(errors="replace"))

    def request(self, subject, payload=b""):
        """The reply's payload; NatsError on "no responders" (status 503)."""
        reply = "%s.%s" % (self.inbox, uuid.uuid4().hex[:8])
        self._send(b"PUB %s %s %d\r\n%s\r\n" % (subject.encode(), reply.encode(),
                                                len(payload), payload))
        hdrs, data = self._next_msg()
        if hdrs.startswith(b"NATS/1.0 503"):
            raise NatsError("no responders for %s" % subject)
        return data

    def publish(self, subject, payload, headers):
        """Sends one message with headers ({name: value}) and a reply subject;
        read its JetStream ack with next_reply()."""
        hdr = ("NATS/1.0\r\n" + "".join("%s: %s\r\n" % kv for kv in headers.items())
               + "\r\n").encode()
        reply = "%s.%s" % (self.inbox, uuid.uuid4().hex[:8])
        self._send(b"HPUB %s %s %d %d\r\n%s%s\r\n" % (
            subject.encode(), reply.encode(), len(hdr), len(hdr) + len(payload), hdr, payload))

    def next_reply(self):
        """The next reply's payload (a publish's ack as JSON text), or None
        for "no responders" (status 503: no stream took the subject)."""
        hdrs, data = self._next_msg()
        return None if hdrs.startswith(b"NATS/1.0 503") else data

    def js(self, api, req=None):
        """A JetStream API call ($JS.API.<api>): the decoded JSON answer."""
        body = json.dumps(req).encode() if req is not None else b""
        return json.loads(self.request("$JS.API." + api, body))


def parse_headers(raw):
    """{name: value} of a NATS header block ("NATS/1.0\\r\\nName: value\\r\\n...")."""
    out = {}
    for line in raw.decode(errors="replace").split("\r\n")[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            out[k.strip()] = v.strip()
    return out


class NatsCluster:
    """NODES_DEFAULT nats-server processes routed to each other, with JetStream."""

    def __init__(self, base, n=NODES_DEFAULT, name=None):
        self.base = Path(base)
        self.name = name or "esbank-%s" % uuid.uuid4().hex[:6]
        self.nodes = [NatsNode(self.base, "n%d" % (i + 1), self.name) for i in range(n)]
        for node in self.nodes:
            node.write_conf(self.nodes)

    @property
    def urls(self):
        """Every node's client URL, comma-separated (esbankd --replicate/--follow)."""
        return ",".join(n.url for n in self.nodes)

    def node(self, name):
        return next(n for n in self.nodes if n.name == name)

    def start(self, timeout=START_TIMEOUT_S):
        for n in self.nodes:
            n.start()
        self.wait_meta_leader(timeout)

    def stop(self):
        for n in self.nodes:
            n.stop()

    def wait_meta_leader(self, timeout=START_TIMEOUT_S):
        """Waits until every running node names the same JetStream meta
        leader; returns its name."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            running = [n for n in self.nodes if n.running()]
            leaders = {n.meta_leader() for n in running}
            if len(leaders) == 1 and None not in leaders:
                return leaders.pop()
            time.sleep(0.1)
        raise TimeoutError("no JetStream meta leader after %.0f s:\n%s"
                           % (timeout, self.log_tails()))

    def conn(self, timeout=REQUEST_TIMEOUT_S):
        """A NatsConn to the first running node."""
        errors = []
        for n in self.nodes:
            if n.running():
                try:
                    return NatsConn(n.url, timeout)
                except (OSError, NatsError) as e:
                    errors.append("%s: %s" % (n.name, e))
        raise NatsError("no node answers: %s" % errors)

    def create_stream(self, config, timeout=CREATE_TIMEOUT_S):
        """$JS.API.STREAM.CREATE with config; returns the answer. Asked again
        until timeout, each time over a new connection, while
        - a cluster that has just elected its meta leader does not yet know
          its peers' JetStream state and answers "no suitable peers for
          placement" (10005; CI saw it once right after start-up);
        - the answer does not come within CREATE_REQUEST_TIMEOUT_S (CI saw a
          5 s wait under ASan). A late answer must not be read as the next
          request's, hence the new connection; a creation that went through
          after all is answered again with success (creating a stream with
          the same config is idempotent).
        Any other error is returned."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                c = self.conn(CREATE_REQUEST_TIMEOUT_S)
                try:
                    r = c.js("STREAM.CREATE." + config["name"], config)
                finally:
                    c.close()
                if ((r.get("error") or {}).get("err_code") != PLACEMENT_NOT_READY
                        or time.monotonic() > deadline):
                    return r
            except (OSError, NatsError):
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.1)

    def stream_info(self, stream, timeout=POLL_TIMEOUT_S):
        """$JS.API.STREAM.INFO's answer (config, state, cluster), or None while
        the stream does not exist or has no leader."""
        try:
            c = self.conn(timeout)
        except NatsError:
            return None
        try:
            r = c.js("STREAM.INFO." + stream)
        except (OSError, NatsError, ValueError):
            return None
        finally:
            c.close()
        return None if "error" in r else r

    def leader_now(self, stream):
        """The node leading the stream's Raft group now, or None."""
        return ((self.stream_info(stream) or {}).get("cluster") or {}).get("leader") or None

    def stream_leader(self, stream, timeout=START_TIMEOUT_S):
        """The name of the node leading the stream's Raft group (waits for one)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.leader_now(stream)
            if leader:
                return leader
            time.sleep(0.1)
        raise TimeoutError("stream %s has no leader after %.0f s" % (stream, timeout))

    def stream_msg(self, stream, seq):
        """{"subject", "seq", "headers" (dict), "data" (bytes)} of the stream's
        message seq. An answer that does not come in time is asked for again
        over a new connection (a read; a loaded cluster may be slow) until
        CREATE_TIMEOUT_S; an error answer raises NatsError at once."""
        deadline = time.monotonic() + CREATE_TIMEOUT_S
        while True:
            c = self.conn()
            try:
                r = c.js("STREAM.MSG.GET." + stream, {"seq": seq})
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
            finally:
                c.close()
        if "error" in r:
            raise NatsError("%s seq %d: %s" % (stream, seq, r["error"]))
        m = r["message"]
        hdrs = parse_headers(base64.b64decode(m["hdrs"])) if m.get("hdrs") else {}
        return {"subject": m["subject"], "seq": m["seq"], "headers": hdrs,
                "data": base64.b64decode(m.get("data") or "")}

    def kill9(self, name):
        self.node(name).kill9()

    def restart(self, name, timeout=START_TIMEOUT_S):
        """Starts a stopped or killed node again on its store; waits until the
        cluster has a meta leader that this node knows too."""
        node = self.node(name)
        node.stop()
        node.start()
        self.wait_meta_leader(timeout)

    def log_tails(self):
        return "\n".join("--- %s (%s)\n%s" % (n.name, n.url, n.log_tail()) for n in self.nodes)


@pytest.fixture
def nats_cluster(tmp_path):
    """A started three-node cluster, stopped by pid after the test."""
    if not nats_server_available():
        pytest.skip("nats-server not installed (%s): scripts/deps installs it" % NATS_SERVER)
    cl = NatsCluster(tmp_path / "nats")
    try:
        cl.start()
        yield cl
    finally:
        cl.stop()


@pytest.fixture
def nats_one(tmp_path):
    """A one-node JetStream nats-server on a free loopback port (its URL),
    stopped by pid after the test: for tests of one group or one
    replicator, where the cluster's elections are not what is tested."""
    if not nats_server_available():
        pytest.skip("nats-server not installed (%s): scripts/deps installs it" % NATS_SERVER)
    port = free_port()
    log = open(tmp_path / "nats-one.log", "ab")
    proc = subprocess.Popen([NATS_SERVER, "-js", "-sd", str(tmp_path / "nats-one"),
                             "-a", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("nats-server did not listen on %d" % port)
                time.sleep(0.05)
        yield "nats://127.0.0.1:%d" % port
    finally:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
