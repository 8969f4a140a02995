#!/usr/bin/python3
"""Writes the seed corpus of the fuzz targets (tests/fuzz/corpus/<target>/).

Run from anywhere: /usr/bin/python3 tests/fuzz/make_corpus.py. The seeds are
valid inputs of every kind each target takes (every op, every route, a real
log and real snapshots from seed-data/, which came from a short run of the
group with --snapshot-every 6) plus a few classic malformed ones; the fuzzer
mutates from there. The files are committed; rerun after changing this.
"""

import hashlib
import os
import struct
from pathlib import Path

import msgpack

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
SEED = HERE / "seed-data"


def pk(o):
    return msgpack.packb(o, use_bin_type=True)


def put(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


ACCT = "4417123456789012"
ACCT2 = "5012345678901234"
OPS = [
    ("open_account", {"email": "Alice@Example.com", "password": "s3cret-pass", "key": "k-1"}),
    ("verify_account", {"account": ACCT, "code": "abcdefghijklmnopqrstuv"}),
    ("reissue_code", {"account": ACCT}),
    ("transfer", {"from": ACCT, "to": ACCT2, "amount": 1250, "key": "t1"}),
    ("withdraw", {"account": ACCT, "amount": 10000}),
    ("get_account", {"account": ACCT}),
    ("authenticate", {"account": ACCT, "password": "s3cret-pass"}),
    ("sum_transactions", {"year": 2026, "month": 2, "day": 28}),
    ("inactive_users", {"days": 30}),
    ("events", {"from": 1, "limit": 100}),
    ("subscribe", {"from": 5}),
    ("status", {}),
    ("ping", {}),
]


def requests():
    out = []
    for i, (op, f) in enumerate(OPS):
        out.append((op, pk(dict({"op": op, "id": i + 1}, **f))))
    # malformed classes of PROTOCOL.md
    out += [
        ("array", pk([1, 2, 3])),
        ("trailing", pk({"op": "ping", "id": 1}) + b"\x00"),
        ("truncated", pk({"op": "ping", "id": 1})[:-2]),
        ("nonstr_keys", pk({1: 2, "op": "ping", "id": 3})),
        ("big_array_hdr", b"\x81\xa2op\xdd\xff\xff\xff\xff"),
        ("deep", b"\x81\xa1x" + b"\x91" * 40 + b"\xc0"),
        ("u64_id", b"\x82\xa2op\xa4ping\xa2id\xcf" + struct.pack(">Q", 2**64 - 1)),
        ("neg_id", pk({"op": "ping", "id": -1})),
        ("float_amount", pk({"op": "withdraw", "id": 1, "account": ACCT, "amount": 1.5})),
        ("long_key", pk({"op": "withdraw", "id": 1, "account": ACCT, "amount": 1, "key": "k" * 65})),
        ("long_email", pk({"op": "open_account", "id": 1, "email": "a" * 250 + "@b.cd",
                           "password": "x" * 1025})),
        ("bin_account", pk({"op": "get_account", "id": 1, "account": ACCT.encode()})),
        ("unknown_op", pk({"op": "rob_bank", "id": 9})),
    ]
    return out


def frames():
    reqs = requests()
    for name, body in reqs:
        put("frame", name, b"\x07" + struct.pack(">I", len(body)) + body)
    allb = b"".join(struct.pack(">I", len(b)) + b for _, b in reqs)
    put("frame", "pipelined", b"\x01" + allb)
    put("frame", "len0", b"\x00" + struct.pack(">I", 0))
    put("frame", "len_max1", b"\x00" + struct.pack(">I", 1024 * 1024 + 1))
    put("frame", "len_huge", b"\x03" + struct.pack(">I", 0xFFFFFFFF) + b"abc")
    put("frame", "partial", b"\x05" + struct.pack(">I", 100) + b"x" * 50)


def request_seeds():
    for i, (name, body) in enumerate(requests()):
        put("request", name, b"\xff" + body)
        if i < len(OPS):
            # forced-op mode: the op's fields alone, op chosen by byte 0
            put("request", "forced_" + name, bytes([i]) + pk(OPS[i][1]))


def log_records(data):
    out, off = [], 8
    while off + 12 <= len(data):
        n, seq = struct.unpack(">IQ", data[off:off + 12])
        out.append(data[off + 12:off + 12 + n])
        off += 44 + n
    return out


def chain(bodies):
    prev, out = b"\0" * 32, [b"ESBLOG\0\1"]
    for i, b in enumerate(bodies):
        head = struct.pack(">IQ", len(b), i + 1)
        hashed = struct.pack(">QI", i + 1, len(b))  # prev || seq || len || body
        prev = hashlib.blake2b(prev + hashed + b, digest_size=32).digest()
        out.append(head + b + prev)
    return b"".join(out)


def chain_v2(bodies, per_batch):
    """A version 2 log: the records of chain() in batches of per_batch, each
    after its 40-byte header (first seq, last seq, bytes, BLAKE2b-128 check of
    offset || those 24 bytes); see common/logfile.c."""
    off = 8
    v1 = chain(bodies)[8:]
    out, pos, seq = [b"ESBLOG\0\2"], 0, 1
    while pos < len(v1):
        start, first = pos, seq
        for _ in range(per_batch):
            if pos >= len(v1):
                break
            pos += 44 + struct.unpack(">I", v1[pos:pos + 4])[0]
            seq += 1
        fields = struct.pack(">QQQ", first, seq - 1, pos - start)
        check = hashlib.blake2b(struct.pack(">Q", off) + fields, digest_size=16).digest()
        out.append(fields + check + v1[start:pos])
        off += 40 + pos - start
    return b"".join(out)


def logfile_seeds_v2(bodies):
    log = chain_v2(bodies, 3)
    put("logfile", "v2_real", b"\x00" + log)
    put("logfile", "v2_real_rw", b"\x02" + log)
    put("logfile", "v2_torn_tail", b"\x02" + log[:-7])
    dmg = bytearray(log)
    dmg[8 + 40 + 20] ^= 1  # a record of the first batch: damage
    put("logfile", "v2_damaged", b"\x02" + bytes(dmg))
    hdr = bytearray(log)
    hdr[8 + 17] ^= 1  # the first batch header
    put("logfile", "v2_bad_batch_header", b"\x02" + bytes(hdr))
    put("logfile", "v2_header_only", b"\x02ESBLOG\0\2")


def logfile_seeds():
    log = (SEED / "events.log").read_bytes()
    bodies = log_records(log)
    assert chain(bodies) == log, "seed log does not match the documented format"
    put("logfile", "real", b"\x00" + log)
    put("logfile", "real_rw", b"\x02" + log)
    put("logfile", "torn_tail", b"\x02" + log[:-7])
    dmg = bytearray(log)
    dmg[20] ^= 1
    put("logfile", "damaged", b"\x00" + bytes(dmg))
    put("logfile", "header_only", b"\x00ESBLOG\0\1")
    put("logfile", "header_prefix", b"\x02ESB")
    put("logfile", "bad_version", b"\x00ESBLOG\0\x09")
    built = b"".join(struct.pack(">HB", len(b), 0) + b for b in bodies)
    put("logfile", "built", b"\x01" + built)
    put("logfile", "built_rw", b"\x03" + built)
    flipped = b"".join(struct.pack(">HB", len(b), 5 if i == 3 else 0) + b
                       for i, b in enumerate(bodies))
    put("logfile", "built_flip", b"\x03" + flipped)
    logfile_seeds_v2(bodies)


def snapfile_seeds():
    for p in sorted(SEED.glob("*.snap")):
        data = p.read_bytes()
        put("snapfile", "raw_" + p.stem[-4:], b"\x00" + data)
        put("snapfile", "body_" + p.stem[-4:], b"\x01" + data[88:])
    put("snapfile", "short", b"\x00ESBSNP\0\1")
    put("snapfile", "empty_map", b"\x01\x80")
    put("snapfile", "huge_array", b"\x01\x81\xa1a\xdd\xff\xff\xff\xff")


def http_seeds():
    def req(method, path, body=b"", headers=()):
        h = ["%s %s HTTP/1.1" % (method, path), "Host: localhost"] + list(headers)
        if body or method == "POST":
            h.append("Content-Type: application/json")
            h.append("Content-Length: %d" % len(body))
        return ("\r\n".join(h) + "\r\n\r\n").encode() + body

    auth = "Authorization: Bearer @TOKEN@"
    seeds = {
        "open": req("POST", "/api/account", b'{"email":"bob@example.com","password":"s3cret-pass"}',
                    ["Idempotency-Key: abc"]),
        "get_account": req("GET", "/api/account", headers=[auth]),
        "verify": req("GET", "/api/verify?account_number=%s&code=abc%%2Ddef" % ACCT,
                      headers=["Accept: text/html"]),
        "login": req("POST", "/api/login", b'{"account_number":"%s","password":"s3cret-pass"}'
                     % ACCT.encode()),
        "transfer": req("POST", "/api/money_transfer",
                        b'{"to_account_number":"%s","amount":12.5}' % ACCT2.encode(), [auth]),
        "transfer_cents": req("POST", "/api/money_transfer",
                              b'{"to_account_number":"%s","amount":1250}' % ACCT2.encode(),
                              [auth, "Idempotency-Key: k2"]),
        "withdraw": req("POST", "/api/withdraw", b'{"amount":100}', [auth]),
        "sum": req("GET", "/api/report/sum_transactions?year=2026&month=2&day=3", headers=[auth]),
        "inactive": req("GET", "/api/report/inactive_users?days=30", headers=[auth]),
        "metrics": req("GET", "/metrics"),
        "notfound": req("GET", "/nope"),
        "method": req("DELETE", "/api/account"),
        "chunked": b"POST /api/account HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5\r\n{\"a\":\r\n3\r\n1}\n\r\n0\r\n\r\n",
        "expect": b"POST /api/login HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}",
        "garbage": b"\x00\xffGARBAGE\r\n\r\n",
        "http10": b"GET /metrics HTTP/1.0\r\n\r\n",
        "bad_json": req("POST", "/api/account", b'{"email":'),
    }
    seeds["pipelined"] = seeds["metrics"] + seeds["login"] + seeds["withdraw"]
    for name, data in seeds.items():
        put("http", name, data)
    # with a bus reply chosen by the input
    put("http", "login_reply", seeds["login"] + b"\0REPLY\0" + pk({"ok": True}))
    put("http", "get_reply", seeds["get_account"] + b"\0REPLY\0" + pk(
        {"ok": True, "account": ACCT, "email": "a@b.c", "balance": 100000, "verified": True,
         "opened_at": 1700000000000, "last_activity": None}))
    put("http", "err_reply", seeds["transfer"] + b"\0REPLY\0" + pk(
        {"ok": False, "error": "insufficient_funds", "message": "no"}))
    put("http", "status_reply", seeds["metrics"] + b"\0REPLY\0" + pk(
        {"ok": True, "state": "live", "last_seq": 5, "durable_seq": 5, "snapshot_seq": 0,
         "head_hash": "00", "uptime_ms": 5, "peers": {"logger": {"connected": True}}}))
    put("http", "sum_reply", seeds["sum"] + b"\0REPLY\0" + pk({"ok": True, "sum": 12345}))
    put("http", "bad_reply", seeds["withdraw"] + b"\0REPLY\0" + b"\x93\x01\x02\x03")


if __name__ == "__main__":
    frames()
    request_seeds()
    logfile_seeds()
    snapfile_seeds()
    http_seeds()
    for d in sorted(CORPUS.iterdir()):
        print(d.name, len(list(d.iterdir())))
