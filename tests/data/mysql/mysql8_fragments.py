#!/usr/bin/env python3
"""Writes mysql8_fragments.json: MySQL 8 binlog fragments for the unit tests (no MySQL 8 in Debian).

Each fragment is built here byte by byte from MySQL's own format, and carries
the text MySQL prints for it, written out by hand (not computed by tidemark):

  json   binary JSON values (sql-common/json_binary.h): every node type (small
         and large objects and arrays, the three literals, int16, uint16,
         int32, uint32, int64, uint64, double, string with a one- and a
         two-byte length, opaque DECIMAL, DATETIME, DATE, TIME and another
         opaque type), inlined and offset values, nesting; with the text of
         JSON_EXTRACT(col, '$') / the mysqlbinlog -v output for it.
  gtid   whole GTID events with header and CRC32 (libbinlogevents' Gtid_event:
         MySQL 8.0's GTID_LOG_EVENT and ANONYMOUS_GTID_LOG_EVENT with the
         logical clock, commit timestamps, transaction length and server
         version; MariaDB's GTID_EVENT, standalone and transactional), with the
         GTID text the server prints (@@gtid_executed / @@gtid_binlog_pos).

    python3 tests/data/mysql/mysql8_fragments.py   # rewrites the JSON next to it
"""
import json
import struct
import zlib
from pathlib import Path

SMALL_OBJ, LARGE_OBJ, SMALL_ARR, LARGE_ARR = 0x00, 0x01, 0x02, 0x03
LITERAL, INT16, UINT16, INT32, UINT32, INT64, UINT64, DOUBLE, STRING, OPAQUE = (
    0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0F)


class I16(int): pass          # noqa: E701  (typed integers pick the node type)
class U16(int): pass          # noqa: E701
class I32(int): pass          # noqa: E701
class U32(int): pass          # noqa: E701
class I64(int): pass          # noqa: E701
class U64(int): pass          # noqa: E701


class Opaque:
    def __init__(self, field_type, data):
        self.field_type, self.data = field_type, data


class Large:
    """Forces the large (4-byte offsets) form of an object or array."""
    def __init__(self, value):
        self.value = value


def varlen(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def scalar(v):
    """(type, bytes) of a value that is not a container."""
    if v is None:
        return LITERAL, b"\x00"
    if v is True:
        return LITERAL, b"\x01"
    if v is False:
        return LITERAL, b"\x02"
    for cls, t, fmt in ((I16, INT16, "<h"), (U16, UINT16, "<H"), (I32, INT32, "<i"),
                        (U32, UINT32, "<I"), (I64, INT64, "<q"), (U64, UINT64, "<Q")):
        if isinstance(v, cls):
            return t, struct.pack(fmt, v)
    if isinstance(v, float):
        return DOUBLE, struct.pack("<d", v)
    if isinstance(v, str):
        b = v.encode()
        return STRING, varlen(len(b)) + b
    if isinstance(v, Opaque):
        return OPAQUE, bytes([v.field_type]) + varlen(len(v.data)) + v.data
    raise TypeError(v)


def inlined(t, large):
    return t in (LITERAL, INT16, UINT16) or (large and t in (INT32, UINT32))


def container(v, large):
    """The bytes of an object or array (after its type byte)."""
    osz = 4 if large else 2
    ofmt = "<I" if large else "<H"
    if isinstance(v, dict):
        # MySQL keeps keys sorted by length, then bytewise.
        items = sorted(v.items(), key=lambda kv: (len(kv[0].encode()), kv[0].encode()))
        keys = [k.encode() for k, _ in items]
        vals = [x for _, x in items]
    else:
        keys, vals = [], list(v)
    n = len(vals)
    header = 2 * osz + len(keys) * (osz + 2) + n * (1 + osz)
    body = bytearray()
    key_entries = bytearray()
    for k in keys:
        key_entries += struct.pack(ofmt, header + len(body)) + struct.pack("<H", len(k))
        body += k
    value_entries = bytearray()
    for x in vals:
        t, b = encode(x)
        if inlined(t, large):
            value_entries += bytes([t]) + b.ljust(osz, b"\x00")
        else:
            value_entries += bytes([t]) + struct.pack(ofmt, header + len(body))
            body += b
    total = header + len(body)
    return struct.pack(ofmt, n) + struct.pack(ofmt, total) + key_entries + value_entries + body


def encode(v):
    """(type, bytes after the type byte) of any value."""
    large = isinstance(v, Large)
    if large:
        v = v.value
    if isinstance(v, dict):
        return (LARGE_OBJ if large else SMALL_OBJ), container(v, large)
    if isinstance(v, list):
        return (LARGE_ARR if large else SMALL_ARR), container(v, large)
    return scalar(v)


def doc(v):
    t, b = encode(v)
    return bytes([t]) + b


def decimal2bin(digits_int, digits_frac, neg=False):
    d2b = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4]
    groups = []
    lead = len(digits_int) % 9
    if lead:
        groups.append(digits_int[:lead])
    groups += [digits_int[i:i + 9] for i in range(lead, len(digits_int), 9)]
    groups += [digits_frac[i:i + 9] for i in range(0, len(digits_frac), 9)]
    out = bytearray()
    for g in groups:
        out += int(g).to_bytes(d2b[len(g)], "big")
    if neg:
        out = bytearray(b ^ 0xFF for b in out)
    out[0] ^= 0x80
    return bytes(out)


def packed_datetime(y, mo, d, h, mi, s, us):
    ymd = ((y * 13 + mo) << 5) | d
    hms = (h << 12) | (mi << 6) | s
    return struct.pack("<q", ((((ymd << 17) | hms) << 24) + us))


def packed_time(neg, h, mi, s, us):
    v = ((((h << 12) | (mi << 6) | s)) << 24) + us
    return struct.pack("<q", -v if neg else v)


JSON_CASES = [
    ("small object, inlined int16, nested small array", {"a": I16(1), "b": [True, None]},
     '{"a": 1, "b": [true, null]}'),
    ("keys stored by length then bytes", {"bb": I16(2), "a": I16(1), "ab": I16(3)},
     '{"a": 1, "ab": 3, "bb": 2}'),
    ("large object, inlined int32 and uint32, offset string", Large({"k": I32(-7),
                                                                      "u": U32(4000000000),
                                                                      "s": "v"}),
     '{"k": -7, "s": "v", "u": 4000000000}'),
    ("large array of every scalar", Large([None, True, False, I16(-32768), U16(65535),
                                           I32(-2147483648), U32(4294967295),
                                           I64(-9223372036854775808),
                                           U64(18446744073709551615), 2.5, "x"]),
     '[null, true, false, -32768, 65535, -2147483648, 4294967295, -9223372036854775808, '
     '18446744073709551615, 2.5, "x"]'),
    ("small array, int32 and uint32 by offset", [I32(70000), U32(3000000000), -0.25],
     '[70000, 3000000000, -0.25]'),
    ("empty object and array", {"o": {}, "a": []}, '{"a": [], "o": {}}'),
    ("deep nesting", [[[[{"x": [I16(5)]}]]]], '[[[[{"x": [5]}]]]]'),
    ("scalar int64", I64(-5), "-5"),
    ("scalar uint64", U64(18446744073709551615), "18446744073709551615"),
    ("scalar uint16", U16(65535), "65535"),
    ("scalar int16", I16(-2), "-2"),
    ("scalar int32", I32(-100000), "-100000"),
    ("scalar uint32", U32(4294967295), "4294967295"),
    ("scalar double", 3.5, "3.5"),
    ("scalar double, integral", 1.0, "1.0"),
    ("literal true", True, "true"),
    ("literal false", False, "false"),
    ("literal null", None, "null"),
    ("string with escapes", 'a"\\\n\t\u00e9', '"a\\"\\\\\\n\\t\u00e9"'),
    ("string with a two-byte length", "y" * 200, '"' + "y" * 200 + '"'),
    ("opaque DECIMAL(5,2)", Opaque(0xF6, bytes([5, 2]) + decimal2bin("123", "45")), "123.45"),
    ("opaque DECIMAL(20,6) negative", Opaque(0xF6, bytes([20, 6]) +
                                             decimal2bin("12345678901234", "500000", neg=True)),
     "-12345678901234.500000"),
    ("opaque DATETIME", Opaque(0x0C, packed_datetime(2015, 1, 15, 23, 24, 25, 500000)),
     '"2015-01-15 23:24:25.500000"'),
    ("opaque DATE", Opaque(0x0A, packed_datetime(2015, 1, 15, 0, 0, 0, 0)), '"2015-01-15"'),
    ("opaque TIME negative", Opaque(0x0B, packed_time(True, 1, 2, 3, 4)), '"-01:02:03.000004"'),
    ("opaque other type as base64", Opaque(0xFC, b"hi"), '"base64:type252:aGk="'),
    ("object holding every container form", {"lo": Large({"z": I16(0)}), "la": Large([I16(1)]),
                                             "so": {"y": None}, "sa": [False]},
     '{"la": [1], "lo": {"z": 0}, "sa": [false], "so": {"y": null}}'),
]


def event(type_code, server_id, body, log_pos=1000, ts=1733616000):
    size = 19 + len(body) + 4
    header = struct.pack("<IBIIIH", ts, type_code, server_id, size, log_pos, 0)
    crc = zlib.crc32(header + body) & 0xFFFFFFFF
    return header + body + struct.pack("<I", crc)


def mysql_gtid_body(sid_hex, gno, last_committed, sequence_number, flags=0x01):
    body = bytes([flags]) + bytes.fromhex(sid_hex.replace("-", "")) + struct.pack("<q", gno)
    body += bytes([2]) + struct.pack("<qq", last_committed, sequence_number)
    # immediate_commit_timestamp (7 bytes, top bit clear: the original equals it),
    # transaction_length (packed integer), immediate_server_version (4 bytes, top bit clear).
    body += (1733616000123456).to_bytes(7, "little")
    body += bytes([0xFC]) + struct.pack("<H", 812)
    body += struct.pack("<I", 80036)
    return body


GTID_CASES = [
    ("MySQL GTID_LOG_EVENT", 33, 11,
     mysql_gtid_body("3e11fa47-71ca-11e1-9e33-c80aa9429562", 23, 7, 8),
     {"text": "3e11fa47-71ca-11e1-9e33-c80aa9429562:23", "standalone": False,
      "last_committed": 7, "sequence_number": 8}),
    ("MySQL GTID_LOG_EVENT, large GNO", 33, 11,
     mysql_gtid_body("00000000-0000-0000-0000-0000000000ff", 9223372036854775807, 0, 1),
     {"text": "00000000-0000-0000-0000-0000000000ff:9223372036854775807", "standalone": False,
      "last_committed": 0, "sequence_number": 1}),
    ("MySQL ANONYMOUS_GTID_LOG_EVENT (gtid_mode = OFF)", 34, 11,
     mysql_gtid_body("00000000-0000-0000-0000-000000000000", 0, 41, 42),
     {"text": "", "standalone": False, "last_committed": 41, "sequence_number": 42}),
    ("MariaDB GTID_EVENT, transactional", 162, 1,
     struct.pack("<QIB", 42, 0, 0x08) + b"\x00" * 6,
     {"text": "0-1-42", "standalone": False, "last_committed": 0, "sequence_number": 0}),
    ("MariaDB GTID_EVENT, standalone (DDL), domain 7", 162, 3,
     struct.pack("<QIB", 5, 7, 0x01) + b"\x00" * 6,
     {"text": "7-3-5", "standalone": True, "last_committed": 0, "sequence_number": 0}),
]


def main():
    out = {
        "made_by": "tests/data/mysql/mysql8_fragments.py (from MySQL's format, by hand)",
        "json": [{"name": n, "hex": doc(v).hex(), "text": t} for n, v, t in JSON_CASES],
        "gtid": [dict({"name": n, "type": ty, "hex": event(ty, sid, body).hex()}, **want)
                 for n, ty, sid, body, want in GTID_CASES],
    }
    path = Path(__file__).with_name("mysql8_fragments.json")
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {path}: {len(out['json'])} JSON values, {len(out['gtid'])} GTID events")


if __name__ == "__main__":
    main()
