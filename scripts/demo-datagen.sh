#!/usr/bin/env bash
# The server-less demo (scripts/demo.sh --datagen): tidemark over its own
# datagen source, Nexmark bids, no PostgreSQL and no Kafka.
#
# It builds tidemark (scripts/setup.sh, unless TIDEMARK names a binary), runs
# examples/datagen.sql, bids per channel in 10-second tumbling windows of event
# time, and prints each window as a small table as soon as the watermark fires
# it, until the bounded stream ends (about 50 seconds; DEMO_SECONDS shortens it).
#
# The table goes to stdout; commentary and tidemark's log go to stderr.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
PYTHON=/usr/bin/python3
DEMO_SECONDS=${DEMO_SECONDS:-60}
say() { printf '[demo] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
[[ "$DEMO_SECONDS" =~ ^[0-9]+$ ]] || die "DEMO_SECONDS must be a whole number of seconds"

if [[ -z "${TIDEMARK:-}" ]]; then
    say "installing packages and building tidemark (scripts/setup.sh)"
    bash scripts/setup.sh >&2
    TIDEMARK="$ROOT/build/tidemark"
fi
[[ -x "$TIDEMARK" ]] || die "no tidemark binary at $TIDEMARK"

workdir=$(mktemp -d /tmp/tidemark-datagen.XXXXXX)
trap 'rm -rf "$workdir"' EXIT

say "running examples/datagen.sql: Nexmark bids at 2,000/s; bids and top price per channel, per 10 s window"
cat > "$workdir/show.py" <<'PY'
import json, sys
from datetime import datetime, timezone
def hms(us):
    return datetime.fromtimestamp(us / 1e6, timezone.utc).strftime("%H:%M:%S")
window, rows = None, []
def show():
    if window is None:
        return
    print(f"window {hms(window[0])}-{hms(window[1])} (event time)")
    print(f"  {'channel':10} {'bids':>8} {'top price':>12}")
    for r in sorted(rows, key=lambda r: r["channel"]):
        print(f"  {r['channel']:10} {r['bids']:>8,} {r['top_price'] / 100:>12,.2f}")
    print(flush=True)
for line in sys.stdin:
    after = json.loads(line).get("after")
    if not after:
        continue
    w = (after["window_start"], after["window_end"])
    if w != window:
        show()
        window, rows = w, []
    rows.append(after)
show()
PY
# timeout ends the run early when DEMO_SECONDS is shorter than the stream (status 124).
status=0
timeout --signal=TERM "$DEMO_SECONDS" "$TIDEMARK" run examples/datagen.sql \
    --state-dir "$workdir/state" --log-level warn | "$PYTHON" "$workdir/show.py" || status=$?
[[ $status -eq 0 || $status -eq 124 ]] || die "the job failed ($status)"
say "done"
