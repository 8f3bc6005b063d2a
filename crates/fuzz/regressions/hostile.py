#!/usr/bin/env python3
"""Writes the hand-made hostile inputs of crates/fuzz/regressions/<target>/
(named `hostile-*`; files named `crash-*` / `oom-*` / `timeout-*` are
minimised libFuzzer findings). Each is also a seed for its fuzz target and
is replayed by the crates' `tests/fuzz_regressions.rs` on stable.

Run from anywhere: python3 crates/fuzz/regressions/hostile.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "hostile-" + name), "wb") as f:
        f.write(data)


def qname(name):
    out = b""
    for label in name.split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def dns_header(qd, an, response=True):
    return struct.pack(">HHHHHH", 0x1234, 0x8180 if response else 0x0100, qd, an, 0, 0)


def rr(name, rtype, rdata, ttl=60):
    return name + struct.pack(">HHIH", rtype, 1, ttl, len(rdata)) + rdata


# ---- DNS
# Question name that is a pointer to itself (offset 12).
put("dns", "compression-self-loop", dns_header(1, 0) + b"\xc0\x0c" + b"\x00\x01\x00\x01")
# Two answers whose names point at each other.
m = dns_header(1, 2) + qname("a.example") + b"\x00\x01\x00\x01"
o1 = len(m)
m += struct.pack(">H", 0xC000 | (o1 + 12)) + struct.pack(">HHIH", 1, 1, 60, 4) + b"\x01\x02\x03\x04"
m += struct.pack(">H", 0xC000 | o1) + struct.pack(">HHIH", 1, 1, 60, 4) + b"\x01\x02\x03\x05"
put("dns", "compression-ping-pong", m)
# An answer name that is a pointer to a pointer to ... (100 pointers, each
# to the previous one, kept in the RDATA of a first TXT answer): too many
# jumps, although every pointer points backwards.
m = dns_header(1, 2) + qname("a.example") + b"\x00\x01\x00\x01"
chain = b""
start = len(m) + 2 + 10  # after the first answer's name and fixed fields
prev = 12
for i in range(100):
    chain += struct.pack(">H", 0xC000 | prev)
    prev = start + 2 * i
m += b"\xc0\x0c" + struct.pack(">HHIH", 16, 1, 60, len(chain)) + chain
m += struct.pack(">H", 0xC000 | prev) + struct.pack(">HHIH", 1, 1, 60, 4) + b"\x01\x02\x03\x04"
put("dns", "pointer-chain-100", m)
# Counts that lie: 65535 answers announced, none present.
put("dns", "lying-ancount", dns_header(1, 0xFFFF) + qname("x.example") + b"\x00\x01\x00\x01")
# An A record whose RDLENGTH says 65535.
m = dns_header(1, 1) + qname("x.example") + b"\x00\x01\x00\x01"
m += b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 0xFFFF) + b"\x01\x02\x03\x04"
put("dns", "lying-rdlength", m)
# A CNAME chain of 40 hops ending in an address (longer than MAX_CNAME_DEPTH).
m = dns_header(1, 41) + qname("h0.example") + b"\x00\x01\x00\x01"
for i in range(40):
    m += rr(qname("h%d.example" % i), 5, qname("h%d.example" % (i + 1)))
m += rr(qname("h40.example"), 1, b"\xc6\x33\x64\x07")
put("dns", "deep-cname-chain", m)
# A CNAME cycle a -> b -> a, with an address for a.
m = dns_header(1, 3) + qname("a.example") + b"\x00\x01\x00\x01"
m += rr(qname("a.example"), 5, qname("b.example"))
m += rr(qname("b.example"), 5, qname("a.example"))
m += rr(qname("a.example"), 1, b"\xc6\x33\x64\x08")
put("dns", "cname-cycle", m)
# DNS over TCP: a length prefix of 65535 followed by 10 bytes.
put("dns", "tcp-lying-length", b"\xff\xff" + b"\x00" * 10)
# 65535 questions announced, each name a pointer: must stop at the end.
put("dns", "lying-qdcount", dns_header(0xFFFF, 0) + qname("q.example") + b"\x00\x01\x00\x01" * 3)

# ---- TLS
# A record claiming 65535 bytes, a handshake claiming 16 MiB.
put("tls", "enormous-handshake-len", b"\x16\x03\x01\xff\xff\x01\xff\xff\xff\x03\x03" + b"\x00" * 32)
# A ClientHello whose handshake length (16 MiB) spans many 16 KiB records.
rec = b"\x16\x03\x01\x40\x00" + b"\x01\xff\xff\xff\x03\x03" + b"\x00" * (0x4000 - 6)
for _ in range(3):
    rec += b"\x16\x03\x01\x40\x00" + b"\x00" * 0x4000
put("tls", "enormous-hello-records", rec)


def client_hello(exts, ext_len_override=None):
    body = b"\x03\x03" + b"\x11" * 32 + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
    ext_len = len(exts) if ext_len_override is None else ext_len_override
    body += struct.pack(">H", ext_len) + exts
    hs = b"\x01" + struct.pack(">I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack(">H", len(hs)) + hs


sni = b"example.com"
sni_ext = struct.pack(">HH", 0, len(sni) + 5) + struct.pack(">HBH", len(sni) + 3, 0, len(sni)) + sni
put("tls", "lying-extensions-len", client_hello(sni_ext, 0xFFF0))
bad_sni = struct.pack(">HH", 0, len(sni) + 5) + struct.pack(">HBH", 0xFFFF, 0, 0xFFFF) + sni
put("tls", "lying-sni-len", client_hello(bad_sni))
# 5000 empty ALPN names.
alpn_list = b"\x00" * 5000
alpn = struct.pack(">HH", 16, len(alpn_list) + 2) + struct.pack(">H", len(alpn_list)) + alpn_list
put("tls", "many-empty-alpn", client_hello(alpn))
# DTLS record with fragment offset/length that lie.
put("tls", "dtls-lying-fragment",
    b"\x16\xfe\xff" + b"\x00" * 8 + b"\x00\x20" + b"\x01\x00\x00\x10\x00\x00\xff\xff\xf0\xff\xff\xff" + b"\x00" * 20)

# ---- QUIC
# Long header Initial v1 with a token length varint of 2^62-1 and a
# payload length varint of 2^62-1, padded to 1200 bytes.
q = b"\xc3\x00\x00\x00\x01" + b"\x08" + b"\x01" * 8 + b"\x00"
q += b"\xff\xff\xff\xff\xff\xff\xff\xff" + b"\xff\xff\xff\xff\xff\xff\xff\xff"
put("quic", "lying-varints", q + b"\x00" * (1200 - len(q)))
# Initial with a DCID length of 255 (the limit is 20).
q = b"\xc3\x00\x00\x00\x01" + b"\xff" + b"\x01" * 40
put("quic", "dcid-len-255", q + b"\x00" * (1200 - len(q)))
# gQUIC Q046 header with a CHLO whose tag count is 65535.
g = b"\xc3Q046\x50" + b"\x01" * 8 + b"\x01" + b"\x00" * 12 + b"CHLO\xff\xff\x00\x00"
put("quic", "gquic-chlo-lying-tag-count", g + b"\x00" * 64)

# ---- STUN
# Binding request whose message length (65532) lies.
put("stun", "lying-msg-len", struct.pack(">HHI", 1, 0xFFFC, 0x2112A442) + b"\x00" * 12 + b"\x00\x06\x00\x04abcd")
# An attribute whose length runs past the message.
put("stun", "lying-attr-len", struct.pack(">HHI", 1, 8, 0x2112A442) + b"\x00" * 12 + b"\x00\x14\xff\xff" + b"abcd")
# 1000 empty attributes (the walk is bounded by the message).
attrs = b"\x80\x22\x00\x00" * 1000
put("stun", "many-empty-attrs", struct.pack(">HHI", 1, len(attrs), 0x2112A442) + b"\x00" * 12 + attrs)
# XOR-MAPPED-ADDRESS with an unknown family and a short value.
put("stun", "bad-xor-address",
    struct.pack(">HHI", 0x0101, 8, 0x2112A442) + b"\x00" * 12 + b"\x00\x20\x00\x04\x00\x07\x12\x34")
# RFC 4571 framing (TCP) with a frame length longer than the data.
put("stun", "tcp-lying-frame-len", b"\xff\xff" + struct.pack(">HHI", 1, 0, 0x2112A442) + b"\x00" * 12)

# ---- decode (frames and capture files)
# IPv4 with IHL 15 and total length 65535 in a 60-byte frame.
eth = b"\x00" * 12 + b"\x08\x00"
put("decode", "ipv4-lying-lengths", eth + b"\x4f\x00\xff\xff" + b"\x00" * 5 + b"\x11" + b"\x00" * 36)
# IPv6 with 60 chained hop-by-hop extension headers.
ext = b"\x00\x00" + b"\x00" * 6
ip6 = b"\x60\x00\x00\x00" + struct.pack(">H", len(ext) * 60) + b"\x00\x40" + b"\x00" * 32 + ext * 60
put("decode", "ipv6-ext-chain", b"\x00" * 12 + b"\x86\xdd" + ip6)
# pcap whose first record claims a 4 GiB captured length.
pcap = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
put("decode", "pcap-record-4gib", pcap + struct.pack("<IIII", 0, 0, 0xFFFFFFFF, 0xFFFFFFFF) + b"\x00" * 32)
# pcapng section header whose block length is 4 GiB - 4.
put("decode", "pcapng-block-4gib", struct.pack("<III", 0x0A0D0D0A, 0xFFFFFFFC, 0x1A2B3C4D) + b"\x01\x00\x00\x00" + b"\xff" * 8)
