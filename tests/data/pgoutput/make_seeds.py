#!/usr/bin/env python3
"""Cuts fuzz seeds for tests/fuzz/pgoutput/ out of the captured messages.

Each seed is a sequence of frames `u16 big-endian length | message`, the input
format of tests/fuzz/fuzz_pgoutput.c: one seed per message kind of each
capture, plus one seed with the whole beginning of the protocol 2 stream
(so that Stream Start/Stop state is exercised) and a keepalive frame.
Usage: tests/data/pgoutput/make_seeds.py
"""
import os
import struct

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, '..', '..', 'fuzz', 'pgoutput')
os.makedirs(out, exist_ok=True)


def frames(msgs):
    return b''.join(struct.pack('>H', len(m)) + m for m in msgs if len(m) < 65536)


for name in ('v1', 'v2'):
    msgs = []
    with open(os.path.join(here, name + '.txt')) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3:
                msgs.append(bytes.fromhex(parts[2]))
    seen = {}
    for i, m in enumerate(msgs):
        seen.setdefault(m[:1], i)
    for tag, i in sorted(seen.items()):
        ctx = msgs[max(0, i - 1):i + 1] if tag in (b'I', b'U', b'D') else msgs[i:i + 1]
        with open(os.path.join(out, '%s-%02x.bin' % (name, tag[0])), 'wb') as f:
            f.write(frames(ctx))
    if name == 'v2':
        # A Stream Start .. Stream Stop block with what surrounds it.
        s = next(i for i, m in enumerate(msgs) if m[:1] == b'S')
        with open(os.path.join(out, 'v2-stream-block.bin'), 'wb') as f:
            f.write(frames(msgs[s:s + 12] + [m for m in msgs if m[:1] in (b'E', b'c', b'A')]))
        with open(os.path.join(out, 'v2-first-40.bin'), 'wb') as f:
            f.write(frames(msgs[:40]))
# Binary values (binary 'true'): each row of capture_binary.sh's t_bin with its
# Relation message, so the target decodes the values by their real types.
msgs = []
with open(os.path.join(here, 'binary.txt')) as f:
    for line in f:
        parts = line.split()
        if len(parts) == 3:
            msgs.append(bytes.fromhex(parts[2]))
rel = next(m for m in msgs if m[:1] == b'R')
rows = [m for m in msgs if m[:1] in (b'I', b'U', b'D') and m[1:5] == rel[1:5]]
for k, m in enumerate(rows):
    with open(os.path.join(out, 'binary-%02d.bin' % k), 'wb') as f:
        f.write(frames([rel, m]))
keepalive = b'k' + struct.pack('>QQB', 0x16B374D848, 1234, 1)
xlog = b'w' + struct.pack('>QQQ', 1, 2, 3) + b'B' + b'\0' * 20
with open(os.path.join(out, 'copydata.bin'), 'wb') as f:
    f.write(frames([keepalive, xlog]))
