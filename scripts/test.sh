#!/usr/bin/env bash
# The project's test command: every test layer, then one summary line.
#
# Stages, in order:
#   1. scripts/setup.sh: install packages, build build/ (debugoptimized, werror)
#   2. unit tests in build/
#   3. unit tests in build-asan/, built with AddressSanitizer and UBSan
#   3b. unit tests in build-tsan/, built with ThreadSanitizer (the runtime's
#      threads, queues and atomics: DESIGN §13)
#   4. integration, crash, SQL and Debezium-compatibility tests
#      (tests/integration, tests/crash, tests/sql, tests/compat; one pytest
#      run) against real servers; the crash test's seed is fixed unless
#      TIDEMARK_CRASH_SEED is set, and it prints the seed and a rerun command;
#      the SQL suite compares every query with PostgreSQL (tests/sql/README.md);
#      tests/compat compares tidemark's events with the real Debezium's
#      (docs/compat.md)
#   4b. a slice of the integration tests (PostgreSQL basics, errors,
#      streaming, types, state; a few Kafka source and sink tests) against
#      the daemon of build-asan/; any sanitizer report fails its test
#
# A stage that cannot build, or that crashes without reporting its tests,
# counts as one failure, and the stages after it still run where they can:
# one broken layer must not hide what the others say.
#
# The last line printed is always "N passed, N failed, N skipped", summed
# over all stages, and the exit status is non-zero if anything failed.
#
# Environment:
#   TIDEMARK_TEST_FILTER   a pytest -k expression, to run some integration/crash tests only
#   TIDEMARK_CRASH_SEED    the crash test's seed (default fixed; 'random' draws one; printed)
#   TIDEMARK_CRASH_KILLS   the crash test's number of kills (default 24)
#   TIDEMARK_MYSQL_CRASH_SEED, TIDEMARK_MYSQL_CRASH_KILLS   the same for the mysql-cdc crash test
#   TIDEMARK_SQL_SEED      the SQL suite's base seed (default fixed; 'random' draws one)
#   TIDEMARK_SQL_FULL      1: the SQL suite's kill round on every case, not CI's subset
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# Debian's python, because pytest and psycopg2 come from Debian packages and
# another python3 earlier on PATH (pyenv, a venv) would not see them.
PYTHON=/usr/bin/python3

LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/tidemark-test.XXXXXX")
trap 'rm -rf "$LOGDIR"' EXIT

passed=0
failed=0
skipped=0
problems=()

stage() { printf '\n==> %s\n' "$*"; }

# Records a failure that no test runner counted (a build that broke, a runner
# that crashed), so that it still shows in the totals.
stage_failed() {
    printf '!!! %s\n' "$*"
    problems+=("$*")
    failed=$((failed + 1))
}

add_counts() {
    passed=$((passed + $1))
    failed=$((failed + $2))
    skipped=$((skipped + $3))
}

meson_setup() {
    local dir=$1
    shift
    if [[ -f "$dir/meson-private/coredata.dat" ]]; then
        meson setup --reconfigure "$dir" "$@"
    else
        meson setup "$dir" "$@"
    fi
}

# Runs the unit suite of one build directory and adds meson's summary counts:
# passed = Ok + Expected Fail, failed = Fail + Unexpected Pass + Timeout.
run_unit_tests() {
    local dir=$1 what=$2
    shift 2
    local log="$LOGDIR/meson-test-$dir.log" rc counts p f s
    meson test -C "$dir" --suite unit --print-errorlogs "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    counts=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | awk '
        /^Ok:/              { p += $2 }
        /^Expected Fail:/   { p += $3 }
        /^Fail:/            { f += $2 }
        /^Unexpected Pass:/ { f += $3 }
        /^Timeout:/         { f += $2 }
        /^Skipped:/         { s += $2 }
        END { printf "%d %d %d\n", p, f, s }')
    read -r p f s <<<"$counts"
    add_counts "$p" "$f" "$s"
    # "No suitable tests defined." exits 0 and counts nothing, which is fine.
    # A non-zero exit with no failed test means the runner itself failed.
    if ((rc != 0 && f == 0)); then
        stage_failed "$what: meson test exited with status $rc without a failing test"
    fi
}

# Reads pytest's JUnit XML: "passed failed skipped".  A test case with a
# failure or error element failed (errors include setup/teardown and
# collection errors); one with a skipped element (skip, xfail) was skipped.
JUNIT_COUNTS=$(cat <<'PY'
import sys
import xml.etree.ElementTree as ET

passed = failed = skipped = 0
for case in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    tags = {child.tag for child in case}
    if tags & {"failure", "error"}:
        failed += 1
    elif "skipped" in tags:
        skipped += 1
    else:
        passed += 1
print(passed, failed, skipped)
PY
)

# -- 1. packages and the main build ------------------------------------------
stage "setup: packages and build/"
build_ok=1
if ! bash scripts/setup.sh; then
    build_ok=0
    stage_failed "setup: installing packages or building build/ failed"
fi

# -- 2. unit tests ------------------------------------------------------------
stage "unit tests (build/)"
if ((build_ok)); then
    run_unit_tests build "unit tests"
else
    echo "skipped: build/ did not build"
fi

# -- 3. unit tests under sanitizers ------------------------------------------
# A debug build (-O0) gives exact stack traces and keeps GCC from raising the
# spurious warnings it is prone to under -fsanitize with optimization; the
# warning gate is the werror build of stage 1.
stage "unit tests under ASan and UBSan (build-asan/)"
asan_ok=0
if meson_setup build-asan --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false \
    && ninja -C build-asan; then
    asan_ok=1
    # Without halt_on_error UBSan only prints and the test still passes.
    ASAN_OPTIONS=abort_on_error=1:halt_on_error=1:detect_leaks=1:print_summary=1 \
    UBSAN_OPTIONS=abort_on_error=1:halt_on_error=1:print_stacktrace=1:print_summary=1 \
        run_unit_tests build-asan "unit tests (ASan/UBSan)" --timeout-multiplier 3
else
    stage_failed "unit tests (ASan/UBSan): build-asan/ did not build"
fi

# -- 3b. unit tests under ThreadSanitizer --------------------------------------
# Every unit test, RocksDB's included: RocksDB is not instrumented, but its
# threads only touch memory the store hands them through its own locks.
# TSan cannot see the synchronisation inside Debian's uninstrumented
# librocksdb, so races it reports between RocksDB's own threads are false;
# tests/tsan.supp names exactly those, with the reason, and nothing of ours.
# halt_on_error makes a race fail the test instead of only printing it.
stage "unit tests under TSan (build-tsan/)"
if meson_setup build-tsan --buildtype=debug -Db_sanitize=thread -Db_lundef=false \
    && ninja -C build-tsan; then
    TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions="$ROOT/tests/tsan.supp" \
        run_unit_tests build-tsan "unit tests (TSan)" --timeout-multiplier 3
else
    stage_failed "unit tests (TSan): build-tsan/ did not build"
fi

# -- 4. integration and crash tests -------------------------------------------
stage "integration, crash, SQL and compatibility tests (tests/integration, tests/crash, tests/sql, tests/compat)"
# An empty TIDEMARK_BIN tells the fixtures that there is no daemon to test,
# so they skip rather than run a stale binary; the harness's own tests
# still run.
tidemark_bin=""
if ((build_ok)); then
    tidemark_bin="$ROOT/build/tidemark"
fi
junit="$LOGDIR/pytest.xml"
# --durations: the slowest tests, to keep CI's time in view (its budget is 45 minutes).
pytest_args=(-m pytest tests/integration tests/crash tests/sql tests/compat -v -rA -p no:cacheprovider
    --durations=25 --junitxml="$junit")
if [[ -n "${TIDEMARK_TEST_FILTER:-}" ]]; then
    pytest_args+=(-k "$TIDEMARK_TEST_FILTER")
fi
TIDEMARK_BIN="$tidemark_bin" PYTHONDONTWRITEBYTECODE=1 "$PYTHON" "${pytest_args[@]}"
rc=$?
p=0 f=0 s=0
if [[ -s "$junit" ]] && counts=$("$PYTHON" -c "$JUNIT_COUNTS" "$junit"); then
    read -r p f s <<<"$counts"
fi
add_counts "$p" "$f" "$s"
# Exit status 5 means no test was collected (a filter that matched nothing):
# not a failure, and nothing to count.
if ((rc != 0 && rc != 5 && f == 0)); then
    stage_failed "integration/crash/SQL tests: pytest exited with status $rc without a failing test"
fi

# -- 4b. integration slice under ASan and UBSan -------------------------------
# The unit tests never run the daemon as a whole: its threads, its servers'
# real replies, shutdown.  This slice does, against build-asan/tidemark, in
# about two minutes under load (the whole suite would take several times that).
#
# Sanitizers write their reports to files in $reports (log_path, one file per
# process, named <tool>.<pid>), and tests/integration/conftest.py fails any
# test during which a file appeared, or whose daemon's stderr.log holds a
# report; so a report fails the test even when the daemon carried on, exited
# as the test expected, or was a short `tidemark explain`.  Under
# TIDEMARK_SANITIZER_REPORTS the fixtures stop their daemons with SIGTERM
# rather than SIGKILL, so that LeakSanitizer gets to check at exit.
stage "integration slice under ASan and UBSan (build-asan/tidemark)"
asan_slice=(
    tests/integration/test_pg_basic.py
    tests/integration/test_pg_errors.py
    tests/integration/test_pg_streaming.py
    tests/integration/test_pg_types.py
    tests/integration/test_state.py
    tests/integration/test_kafka_sink.py::test_changes_arrive_keyed_partitioned_and_followed_by_tombstones
    tests/integration/test_kafka_sink.py::test_json_and_upsert_formats
    tests/integration/test_kafka_sink.py::test_exactly_once_commits_at_checkpoints_and_survives_restart
    tests/integration/test_kafka_sink.py::test_sasl_password_never_appears_in_logs_or_explain
    tests/integration/test_kafka_source.py::test_schema_forms_and_tombstones
    tests/integration/test_kafka_source.py::test_malformed_records_go_to_the_dead_letter_topic
    tests/integration/test_kafka_source.py::test_graceful_stop_and_restart_give_each_event_once
    tests/integration/test_kafka_source.py::test_kill9_and_restart_give_each_event_once
    tests/integration/test_kafka_source.py::test_records_of_aborted_transactions_never_appear
    tests/integration/test_mysql_cdc.py
)
if ((asan_ok)); then
    reports="$LOGDIR/sanitizer-reports"
    mkdir -p "$reports"
    junit="$LOGDIR/pytest-asan.xml"
    pytest_args=(-m pytest "${asan_slice[@]}" -v -rA -p no:cacheprovider --junitxml="$junit")
    if [[ -n "${TIDEMARK_TEST_FILTER:-}" ]]; then
        pytest_args+=(-k "$TIDEMARK_TEST_FILTER")
    fi
    TIDEMARK_BIN="$ROOT/build-asan/tidemark" TIDEMARK_SANITIZER_REPORTS="$reports" \
    ASAN_OPTIONS=abort_on_error=1:halt_on_error=1:detect_leaks=1:print_summary=1:log_path="$reports/asan" \
    UBSAN_OPTIONS=abort_on_error=1:halt_on_error=1:print_stacktrace=1:print_summary=1:log_path="$reports/ubsan" \
    PYTHONDONTWRITEBYTECODE=1 "$PYTHON" "${pytest_args[@]}"
    rc=$?
    p=0 f=0 s=0
    if [[ -s "$junit" ]] && counts=$("$PYTHON" -c "$JUNIT_COUNTS" "$junit"); then
        read -r p f s <<<"$counts"
    fi
    add_counts "$p" "$f" "$s"
    if ((rc != 0 && rc != 5 && f == 0)); then
        stage_failed "integration slice (ASan/UBSan): pytest exited with status $rc without a failing test"
    fi
    # Every report should belong to a test that failed for it; a report that
    # none did (a process that outlived its test) still fails the stage.
    nreports=0
    for report in "$reports"/*; do
        [[ -e $report ]] || continue
        nreports=$((nreports + 1))
        printf '\n--- sanitizer report %s ---\n' "$report"
        head -c 20000 "$report"
    done
    if ((nreports > 0 && f == 0)); then
        stage_failed "integration slice (ASan/UBSan): $nreports sanitizer report(s) that no test failed for"
    fi
else
    echo "skipped: build-asan/ did not build"
fi

# -- summary -----------------------------------------------------------------
printf '\n'
for problem in "${problems[@]}"; do
    printf 'stage failure: %s\n' "$problem"
done
echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
