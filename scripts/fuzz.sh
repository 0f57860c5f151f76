#!/usr/bin/env bash
# Builds the libFuzzer targets and runs every one of them, one after another.
#
#   scripts/fuzz.sh [SECONDS]                 each target for SECONDS (default 600)
#   scripts/fuzz.sh --runs N                  each target to N executions instead
#   scripts/fuzz.sh --only NAME[,NAME] ...    only these targets (e.g. pgoutput)
#   scripts/fuzz.sh --fresh ...               forget the corpus earlier runs grew
#   scripts/fuzz.sh --list                    build, then print the targets and stop
#
# The build is build-fuzz/ (CC=clang, -Dfuzz=true, ASan and UBSan, the whole
# library instrumented for coverage: meson.build).  The targets are the
# fuzz-* executables that tests/fuzz/meson.build defines, so a target added
# to its list is run here without touching this script.
#
# Per target NAME:
#   tests/fuzz/NAME/             seed corpus, read only (replayed in CI as a unit test)
#   tests/fuzz/NAME.options      optional extra libFuzzer flags, one per line (-max_len=…)
#   build-fuzz/fuzz/corpus/NAME/ inputs this machine's runs found; kept between runs
#                                so that fuzzing picks up where it left off (--fresh clears it)
#   build-fuzz/fuzz/crashes/NAME/ crash-*, leak-*, timeout-*, oom-* reproducers
#   build-fuzz/fuzz/logs/NAME.log libFuzzer's output
#
# The seed is fixed (-seed=1, or $FUZZ_SEED) so that a run can be repeated.
# A sanitizer report of any kind (ASan, LeakSanitizer, UBSan: UBSAN_OPTIONS
# below makes it fatal) counts as a crash, and so do libFuzzer's timeouts and
# out-of-memory reports.  A crash stops that target's run; the other targets
# still run.  The script prints one line per target (executions, and ok or
# CRASH with the reproducer) and exits non-zero if any target crashed or
# could not be run.
#
# To reproduce a crash: build-fuzz/tests/fuzz/fuzz-NAME build-fuzz/fuzz/crashes/NAME/crash-…
# Once fixed, copy the reproducer into tests/fuzz/NAME/ so that CI replays it.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD=build-fuzz
WORK=$BUILD/fuzz

usage() {
    sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

seconds=600
runs=""
only=""
fresh=0
list=0
while (($#)); do
    case $1 in
        --runs) [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || usage; runs=$2; shift 2 ;;
        --only) [[ $# -ge 2 ]] || usage; only=$2; shift 2 ;;
        --fresh) fresh=1; shift ;;
        --list) list=1; shift ;;
        -h | --help) usage ;;
        *) [[ $1 =~ ^[0-9]+$ ]] || usage; seconds=$1; shift ;;
    esac
done
seed=${FUZZ_SEED:-1}

# -- build ---------------------------------------------------------------------
# The same setup as the fuzz comment in tests/fuzz/meson.build; optimized,
# because executions per second is what fuzzing is measured in.
if [[ -f "$BUILD/meson-private/coredata.dat" ]]; then
    setup=(meson setup --reconfigure "$BUILD")
else
    setup=(meson setup "$BUILD")
fi
setup_log=$(mktemp "${TMPDIR:-/tmp}/tidemark-fuzz-setup.XXXXXX")
if ! CC=clang "${setup[@]}" --buildtype=debugoptimized -Dfuzz=true \
        -Db_sanitize=address,undefined -Db_lundef=false >"$setup_log" 2>&1; then
    cat "$setup_log" >&2
    rm -f "$setup_log"
    echo "fuzz.sh: meson setup of $BUILD/ failed (is clang installed?)" >&2
    exit 1
fi
rm -f "$setup_log"

# The fuzz-* executables meson knows, as paths relative to the build dir:
# only these are built, not the whole project.
mapfile -t targets < <(meson introspect --targets "$BUILD" | /usr/bin/python3 -c '
import json, os, sys
for t in json.load(sys.stdin):
    if t["type"] == "executable" and t["name"].startswith("fuzz-"):
        for f in t["filename"]:
            print(os.path.relpath(f, sys.argv[1]))
' "$BUILD")
if ((${#targets[@]} == 0)); then
    echo "fuzz.sh: $BUILD/ defines no fuzz-* executable (is -Dfuzz=true set?)" >&2
    exit 1
fi
if ! ninja -C "$BUILD" "${targets[@]}"; then
    echo "fuzz.sh: building the fuzz targets failed" >&2
    exit 1
fi

# -- run -----------------------------------------------------------------------
names=()
for t in "${targets[@]}"; do
    name=$(basename "$t")
    name=${name#fuzz-}
    if [[ -n $only && ",$only," != *",$name,"* ]]; then
        continue
    fi
    names+=("$name")
done
if ((list)); then
    printf '%s\n' "${names[@]}"
    exit 0
fi
if ((${#names[@]} == 0)); then
    echo "fuzz.sh: no target matches --only $only" >&2
    exit 1
fi

if [[ -n $runs ]]; then
    budget=(-runs="$runs")
    what="$runs executions"
else
    budget=(-max_total_time="$seconds")
    what="${seconds}s"
fi

# Any UBSan report stops the run (by default UBSan prints and carries on,
# and the input would go unreported); leaks are reported by libFuzzer itself.
export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1:print_summary=1
export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1:print_summary=1

mkdir -p "$WORK/logs"
results=()
bad=0
for name in "${names[@]}"; do
    bin=$BUILD/tests/fuzz/fuzz-$name
    seeds=tests/fuzz/$name
    corpus=$WORK/corpus/$name
    crashes=$WORK/crashes/$name
    log=$WORK/logs/$name.log
    if ((fresh)); then
        rm -rf "$corpus"
    fi
    mkdir -p "$corpus" "$crashes"
    extra=()
    if [[ -f tests/fuzz/$name.options ]]; then
        mapfile -t extra < <(grep -v '^[[:space:]]*\(#\|$\)' "tests/fuzz/$name.options")
    fi
    corpora=("$corpus")
    if [[ -d $seeds ]]; then
        corpora+=("$seeds")
    else
        echo "fuzz.sh: $name has no seed corpus folder $seeds; starting from nothing" >&2
    fi
    printf '==> fuzz-%s: %s, -seed=%s, log %s\n' "$name" "$what" "$seed" "$log"
    # New inputs go into the first corpus folder only, so the seeds in the
    # repository stay as they are.
    "$bin" -seed="$seed" "${budget[@]}" -timeout=30 -print_final_stats=1 \
        -artifact_prefix="$crashes/" "${extra[@]}" "${corpora[@]}" >"$log" 2>&1
    rc=$?
    # The final stats give the exact count; a run that died has only its
    # progress lines ("#123456 pulse ..."), whose last number is close enough.
    execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -1)
    if [[ -z $execs ]]; then
        execs=$(sed -n 's/^#\([0-9][0-9]*\)[[:space:]].*/\1/p' "$log" | tail -1)
    fi
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    if ((rc == 0)); then
        line=$(printf 'fuzz-%-12s %12s execs  ok' "$name" "${execs:-?}")
    else
        bad=1
        reason=$(grep -m1 -E '^(==[0-9]+==ERROR|SUMMARY:|.*runtime error:)' "$log" || true)
        line=$(printf 'fuzz-%-12s %12s execs  CRASH (exit %d) %s %s' "$name" "${execs:-?}" \
            "$rc" "${artifact:-no artifact, see $log}" "${reason:+— $reason}")
    fi
    echo "$line"
    results+=("$line")
done

printf '\n'
printf '%s\n' "${results[@]}"
if ((bad)); then
    echo "fuzz.sh: at least one target crashed; reproducers are under $WORK/crashes/" >&2
    exit 1
fi
