"""A client sending garbage (PROTOCOL.md, Transport and framing): framing
errors close that connection; a bad body gets bad_request and the connection
stays usable; nothing affects other connections or the state, and the server
stays live throughout.
"""

import os
import socket
import struct
import threading
import time

import pytest

from conftest import OPENING_BALANCE, expect_err, expect_ok, open_verified
from esbank_proto import FRAME_BODY_MAX, Client, encode


@pytest.fixture
def raw(group):
    c = group.client(timeout=5.0)
    yield c
    c.close()


def assert_still_usable(c):
    rid = c.send("ping")
    assert expect_ok(c.reply(rid))["id"] == rid


def assert_bad_request(r, ids=(0,)):
    assert r.get("ok") is False and r.get("error") == "bad_request", r
    assert r.get("id") in ids, r


# -- framing errors: reply bad_frame and close -----------------------------


@pytest.mark.parametrize("length", [0, FRAME_BODY_MAX + 1, 0xFFFFFFFF], ids=str)
def test_bad_frame_length_closes(group, raw, length):
    seq = expect_ok(group.client().status())["last_seq"]
    raw.send_bytes(struct.pack(">I", length))
    assert raw.read_until_closed(5.0), "connection not closed after a frame of length %d" % length
    assert raw.frames == [{"id": 0, "ok": False, "error": "bad_frame"}] or (
        len(raw.frames) == 1 and raw.frames[0].get("error") == "bad_frame"
        and raw.frames[0].get("id") == 0 and raw.frames[0].get("ok") is False), raw.frames
    st = expect_ok(group.client().status())
    assert st["state"] == "live" and st["last_seq"] == seq


def test_frame_of_exactly_max_length_is_accepted(raw):
    base = {"op": "ping", "id": 77, "pad": ""}
    overhead = len(encode(base))
    # str32 header is 5 bytes instead of fixstr's 1 byte.
    body = encode(dict(base, pad="x" * (FRAME_BODY_MAX - overhead - 4)))
    assert len(body) == FRAME_BODY_MAX
    raw.send_body(body)
    assert expect_ok(raw.reply(77, timeout=10))
    assert_still_usable(raw)


# -- bad bodies: bad_request, connection stays open ------------------------


GARBAGE = {
    "truncated": encode({"id": 5, "op": "ping", "padding": "abcdefgh"})[:-3],
    "array": encode(["op", "ping", "id", 5]),
    "random": b"\xc1\xff\x00garbage\x13\x37" + os.urandom(32),
    "int": encode(12345),
    "string": encode("ping"),
    "nil": b"\xc0",
    "never_used_byte": b"\xc1",
    "huge_array_count": b"\x82\xa2op\xa4ping\xa2id\xdd\xff\xff\xff\xff",
    "huge_map_count": b"\xdf\xff\xff\xff\xff\xa2op",
    "huge_str_len": b"\x82\xa2op\xdb\xff\xff\xff\xf0ping",
    "map_then_trailing": encode({"op": "ping", "id": 5}) + b"\x00",
    "two_maps": encode({"op": "ping", "id": 5}) + encode({"op": "ping", "id": 6}),
}


@pytest.mark.parametrize("name", list(GARBAGE))
def test_bad_body_is_bad_request_and_connection_stays(raw, name):
    raw.send_body(GARBAGE[name])
    r = raw.reply(0) if name not in ("map_then_trailing", "two_maps", "truncated") else None
    if r is None:
        # The id may be readable: then the reply carries it.
        deadline = time.monotonic() + 5
        while not (raw._replies.get(0) or raw._replies.get(5)):
            assert time.monotonic() < deadline, "no reply to %s" % name
            raw._pump(0.2)
        r = (raw._replies.get(0) or raw._replies.get(5)).popleft()
        assert_bad_request(r, ids=(0, 5))
    else:
        assert_bad_request(r)
    assert not raw.eof
    assert_still_usable(raw)
    # Exactly one reply per bad frame.
    time.sleep(0.1)
    raw._pump(0.1)
    assert not any(raw._replies.values()), dict(raw._replies)


@pytest.mark.parametrize("req,rid", [
    ({"id": 9}, 9),
    ({"id": 10, "op": 5}, 10),
    ({"id": 11, "op": None}, 11),
    ({"op": "ping"}, 0),
    ({"op": "ping", "id": "12"}, 0),
    ({"op": "ping", "id": -3}, 0),
    ({"op": "ping", "id": 1.5}, 0),
    ({"op": "ping", "id": None}, 0),
    ({}, 0),
], ids=lambda x: repr(x)[:30])
def test_map_without_op_or_id(raw, req, rid):
    raw.send_map(req)
    r = raw.reply(rid)
    expect_err(r, "bad_request") if rid else assert_bad_request(r)
    assert_still_usable(raw)


def test_non_string_keys_ignored(raw):
    raw.send_map({"op": "ping", "id": 21, 1: "x", 2.5: None, b"bin": 3, None: 4})
    expect_ok(raw.reply(21))
    # Unknown string keys are ignored as well.
    raw.send_map({"op": "ping", "id": 22, "whatever": [1, 2, {"a": b"b"}]})
    expect_ok(raw.reply(22))


def test_integer_encodings(group, raw):
    c = group.client()
    a = open_verified(c)
    # id and amount as uint64 / int8 etc: any encoding with an in-range value.
    body = (b"\x84" + encode("op") + encode("withdraw") + encode("id") + b"\xcf" +
            struct.pack(">Q", 31) + encode("account") + encode(a) + encode("amount") +
            b"\xd3" + struct.pack(">q", 5))
    raw.send_body(body)
    r = expect_ok(raw.reply(31))
    assert r["balance"] == OPENING_BALANCE - 5
    body = (b"\x84" + encode("op") + encode("withdraw") + encode("id") + b"\xd0\x20" +
            encode("account") + encode(a) + encode("amount") + b"\xcd\x00\x07")
    raw.send_body(body)
    assert expect_ok(raw.reply(32))["balance"] == OPENING_BALANCE - 12
    # The largest id comes back unchanged.
    raw.send_map({"op": "ping", "id": 2 ** 64 - 1})
    assert expect_ok(raw.reply(2 ** 64 - 1))["id"] == 2 ** 64 - 1


def test_deep_nesting_does_not_kill_the_server(group, raw):
    deep = b"\x91" * 100000 + b"\xc0"
    body = b"\x83" + encode("op") + encode("ping") + encode("id") + encode(41) + \
        encode("junk") + deep
    raw.send_body(body)
    r = raw.reply(41) if raw._replies.get(41) else None
    deadline = time.monotonic() + 5
    while r is None:
        raw._pump(0.2)
        for k in (0, 41):
            if raw._replies.get(k):
                r = raw._replies[k].popleft()
        assert time.monotonic() < deadline, "no reply to deeply nested request"
    assert r.get("ok") is True or r.get("error") == "bad_request", r
    assert_still_usable(raw)
    assert expect_ok(group.client().status())["state"] == "live"


def test_frame_sent_byte_by_byte(raw):
    body = encode({"op": "ping", "id": 51})
    data = struct.pack(">I", len(body)) + body
    for i in range(len(data)):
        raw.send_bytes(data[i:i + 1])
        time.sleep(0.003)
    expect_ok(raw.reply(51))


def test_many_frames_in_one_write(raw):
    data = b"".join(struct.pack(">I", len(b)) + b
                    for b in (encode({"op": "ping", "id": 60 + i}) for i in range(50)))
    raw.send_bytes(data)
    for i in range(50):
        expect_ok(raw.reply(60 + i))


def test_client_vanishing_mid_frame(group):
    for cut in (2, 4, 10):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(group.sock_path))
        body = encode({"op": "ping", "id": 1, "pad": "y" * 100})
        s.sendall((struct.pack(">I", len(body)) + body)[:cut])
        s.close()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(group.sock_path))
    s.sendall(struct.pack(">I", 1000))  # promises a body, sends nothing, hangs up
    s.shutdown(socket.SHUT_WR)
    s.close()
    c = group.client()
    assert expect_ok(c.status())["state"] == "live"


def test_client_closing_with_replies_pending(group):
    c = group.client()
    a = open_verified(c)
    for _ in range(5):
        c2 = Client(group.sock_path)
        for _ in range(20):
            c2.send("withdraw", {"account": a, "amount": 1})
        c2.close()
    # Each withdrawal sent is applied or not; the balance agrees with the log.
    bal, prev = None, -1
    while bal != prev:
        time.sleep(0.3)
        prev, bal = bal, expect_ok(c.get_account(a))["balance"]
    assert OPENING_BALANCE - 100 <= bal <= OPENING_BALANCE
    evs, _ = c.all_events()
    n = sum(1 for e in evs if e["type"] == "money_withdrawn" and e["account"] == a)
    assert bal == OPENING_BALANCE - n
    assert expect_ok(c.status())["state"] == "live"


# -- garbage on one connection, business as usual on another ---------------


def test_garbage_does_not_disturb_other_clients(group):
    good = group.client(timeout=20)
    a = open_verified(good)
    b = open_verified(good)
    stop = threading.Event()
    errors = []

    def pound():
        payloads = list(GARBAGE.values())
        i = 0
        while not stop.is_set():
            try:
                c = Client(group.sock_path, timeout=2)
                c.send_body(payloads[i % len(payloads)])
                c.send_map({"op": 7, "id": "x"})
                if i % 5 == 0:
                    c.send_bytes(struct.pack(">I", 0))
                c._pump(0.01)
                c.close()
            except (OSError, TimeoutError) as e:
                errors.append(e)
            i += 1

    t = threading.Thread(target=pound, daemon=True)
    t.start()
    try:
        ids = []
        for i in range(100):
            ids.append(good.send("transfer", {"from": a, "to": b, "amount": 10}))
            if i % 10 == 0:
                time.sleep(0.01)
        seqs = [expect_ok(good.reply(i, timeout=20))["seq"] for i in ids]
    finally:
        stop.set()
        t.join(10)
    assert seqs == sorted(seqs)
    assert expect_ok(good.get_account(a))["balance"] == OPENING_BALANCE - 1000
    assert expect_ok(good.get_account(b))["balance"] == OPENING_BALANCE + 1000
    st = expect_ok(good.status())
    assert st["state"] == "live" and st["durable_seq"] == st["last_seq"]
    assert not errors, errors[:3]
    # Garbage never became an event.
    evs, _ = good.all_events()
    assert [e["seq"] for e in evs] == list(range(1, len(evs) + 1))
