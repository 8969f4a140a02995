#!/usr/bin/python3
"""genlog.py [--plain] DATA N [T]: writes DATA/events.log holding N account_opened events
(seq 1..N), in the format of common/logfile.c (version 1), and the key store
DATA/keys they need (common/keystore.c's format), for scripts/bench.
With T: then N account_verified events and T money_transferred events
between those accounts (1 cent to $1, never more than the sender holds), as
the resolver writes a transfer without a key: a log of transfers to replay.

Each event looks like one the resolver writes for a real open_account: a
16-digit account number, an e-mail address like esbank bench's sealed as
common/pii.c seals it (email_hash: keyed BLAKE2b-256 under the key store's
secret; email_enc: XChaCha20-Poly1305 under the account's own key, through
libsodium with ctypes, the nonce derived from the account and seq, which
are the associated data too), the opening
balance, an argon2id string of the length the default (interactive) cost
produces, and a 64-hex code hash. With --plain: the email in plain text
("email"), as logs written before sealing hold it, and no DATA/keys. The hashes are random bytes, not real
argon2id output: nothing checks a password during the benchmark.
Prints the log's size in bytes.
"""
import base64
import ctypes
import ctypes.util
import hashlib
import os
import random
import struct
import sys
import time

import msgpack

OPEN_BALANCE = 100000  # cents, LEDGER_OPEN_BALANCE
ACCOUNT_MIN = 10**15


NONCE_BYTES = 24
TAG_BYTES = 16


class Keys:
    """DATA/keys (common/keystore.c): a header with the secret, 64-byte slots."""

    def __init__(self, f):
        self.f, self.secret = f, os.urandom(32)
        head = b"ESBKEYS\x00" + struct.pack(">II", 1, 64) + self.secret
        f.write(head + check(head))

    def add(self, account):
        key = os.urandom(32)
        body = struct.pack(">Q", account) + bytes(8) + key
        self.f.write(body + check(body))
        return key


def check(body):
    return hashlib.blake2b(body, digest_size=16).digest()


class Sealer:
    """common/pii.c's pii_seal: nonce || ciphertext || tag."""

    def __init__(self):
        self.na = ctypes.CDLL(ctypes.util.find_library("sodium") or "libsodium.so.23")
        if self.na.sodium_init() < 0:
            raise SystemExit("genlog.py: libsodium does not start")
        self.enc = self.na.crypto_aead_xchacha20poly1305_ietf_encrypt

    def seal(self, key, account, seq, text):
        nonce = struct.pack(">QQ", account, seq) + bytes(NONCE_BYTES - 16)  # ledger_sealed_nonce
        out = ctypes.create_string_buffer(len(text) + TAG_BYTES)
        clen = ctypes.c_ulonglong(0)
        ad = struct.pack(">QQ", account, seq)
        self.enc(out, ctypes.byref(clen), text, ctypes.c_ulonglong(len(text)), ad,
                 ctypes.c_ulonglong(len(ad)), None, nonce, key)
        return nonce + out.raw[:clen.value]


class Log:
    """Appends hash-chained records to an open file, seq 1, 2, ..."""

    def __init__(self, f):
        self.f, self.seq, self.prev = f, 0, bytes(32)

    def add(self, event):
        self.seq += 1
        event["seq"] = self.seq
        body = msgpack.packb(event)
        h = hashlib.blake2b(self.prev + struct.pack(">QI", self.seq, len(body)) + body,
                            digest_size=32).digest()
        self.f.write(struct.pack(">IQ", len(body), self.seq) + body + h)
        self.prev = h


def transfers(log, numbers, t, ts):
    """N account_verified events, then t transfers, timestamps from ts on."""
    rnd = random.Random(20260102)
    n = len(numbers)
    balance = [OPEN_BALANCE] * n
    for a in numbers:
        log.add({"ts": ts, "type": "account_verified", "account": str(a)})
    for i in range(t):
        a, b = rnd.randrange(n), rnd.randrange(n - 1)
        b += b >= a
        amount = min(rnd.randint(1, 100), balance[a])
        if amount == 0:
            a, b, amount = b, a, 1
        balance[a] -= amount
        balance[b] += amount
        log.add({"ts": ts + i // 1000, "type": "money_transferred",
                 "from": str(numbers[a]), "to": str(numbers[b]), "amount": amount})


def main():
    args = sys.argv[1:]
    plain = "--plain" in args
    if plain:
        args.remove("--plain")
    data, n = args[0], int(args[1])
    t = int(args[2]) if len(args) > 2 else 0
    os.makedirs(data, exist_ok=True)
    path = os.path.join(data, "events.log")
    rnd = random.Random(20260101)
    # distinct 16-digit numbers, first digit non-zero
    numbers = set()
    while len(numbers) < n:
        numbers.add(rnd.randrange(ACCOUNT_MIN, 10 * ACCOUNT_MIN))
    numbers = list(numbers)
    rnd.shuffle(numbers)
    ts = int(time.time() * 1000) - n - t // 1000  # never decreasing, ending about now
    prev = bytes(32)
    blake2b = hashlib.blake2b
    pack = msgpack.packb
    b64 = base64.b64encode
    urandom = os.urandom
    sealer = Sealer()
    with open(path, "wb", buffering=8 << 20) as f, \
            open(os.path.join(data, "keys" if not plain else "keys.unused"), "wb",
                 buffering=8 << 20) as kf:
        os.fchmod(kf.fileno(), 0o600)
        keys = Keys(kf)
        f.write(b"ESBLOG\x00\x01")
        for i in range(n):
            seq = i + 1
            r = urandom(16 + 32 + 32)
            pwhash = ("$argon2id$v=19$m=65536,t=2,p=1$" + b64(r[:16]).decode().rstrip("=") +
                      "$" + b64(r[16:48]).decode().rstrip("="))
            email = b"bench-genlog-%d@bench.example" % i
            if plain:
                sealed = {"email": email.decode()}
            else:
                sealed = {
                    "email_hash": blake2b(email, digest_size=32, key=keys.secret).hexdigest(),
                    "email_enc": sealer.seal(keys.add(numbers[i]), numbers[i], seq, email),
                }
            body = pack({
                "seq": seq,
                "ts": ts + i,
                "type": "account_opened",
                "account": str(numbers[i]),
                **sealed,
                "balance": OPEN_BALANCE,
                "pwhash": pwhash,
                "code_hash": r[48:].hex(),
            })
            head = struct.pack(">IQ", len(body), seq)
            h = blake2b(prev + struct.pack(">QI", seq, len(body)) + body, digest_size=32).digest()
            f.write(head)
            f.write(body)
            f.write(h)
            prev = h
        if t:
            log = Log(f)
            log.seq, log.prev = n, prev
            transfers(log, numbers, t, ts + n)
        f.flush()
        os.fsync(f.fileno())
        kf.flush()
        os.fsync(kf.fileno())
    if plain:
        os.unlink(os.path.join(data, "keys.unused"))
    print(os.path.getsize(path))


if __name__ == "__main__":
    main()
