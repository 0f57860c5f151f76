#!/usr/bin/env bash
# Installs what tidemark needs to build and test, then builds it into build/.
#
# It also fetches the Apache Kafka broker that the integration tests run
# (tests/kafka/pom.xml) from Maven Central into ~/.m2, and caches its
# classpath in ~/.cache/tidemark, where a clean build does not remove it;
# and builds tests/compat (the real Debezium the compatibility tests run).
#
# Idempotent and fast when repeated: the apt step is skipped when every
# package is already installed, the Kafka step when the cached classpath
# names jars that all exist, and meson reconfigures an existing build
# directory instead of creating it again.
#
# Usage: scripts/setup.sh [--deps-only]
#   --deps-only   install the packages and the Kafka broker and stop; do not build.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PACKAGES=(
    # Build tools and the compilers; clang's runtime provides libFuzzer.
    meson ninja-build pkg-config gcc clang libclang-rt-14-dev
    # Libraries the daemon links against.
    libpq-dev libjansson-dev librocksdb-dev libevent-dev libpg-query-dev librdkafka-dev
    default-libmysqlclient-dev libmariadb-dev
    # The admin API's TLS: OpenSSL (libevent-dev ships libevent_openssl), and the openssl and
    # curl commands the TLS tests make certificates and requests with.
    libssl-dev openssl curl
    # The servers and tools the integration tests start and drive.
    postgresql-15 postgresql-contrib python3-pytest python3-psycopg2 procps
    # pip installs tests/requirements.txt (PyPI packages Debian does not have) beside the system.
    python3-pip python3-yaml
    # promtool checks the Grafana dashboard's queries (tests/integration/test_deploy_grafana.py).
    prometheus
    # systemd-analyze checks deploy/systemd (tests/integration/test_deploy_systemd.py).
    systemd
    # scripts/container.sh builds the image from Debian's packages (test_deploy_container.py).
    podman buildah debootstrap uidmap fuse-overlayfs
    # MariaDB 10.11 with its binlog, for the mysql-cdc source's tests.
    mariadb-server mariadb-client
    # Apache Kafka for the tests: a JDK runs the broker, maven fetches it, and
    # the Python client and kcat drive it.
    openjdk-17-jdk-headless maven python3-confluent-kafka kcat
)

deps_only=0
for arg in "$@"; do
    case "$arg" in
        --deps-only) deps_only=1 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "setup.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
    esac
done

say() { printf '==> %s\n' "$*" >&2; }

missing_packages() {
    # One dpkg-query for all packages: it is slow to start, and this check is
    # all that a repeated run pays for the apt step.
    local -A installed=()
    local pkg status
    while read -r pkg status; do
        [[ "$status" == "installed" ]] && installed[${pkg%%:*}]=1
    done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${PACKAGES[@]}" 2>/dev/null || true)
    for pkg in "${PACKAGES[@]}"; do
        [[ -n "${installed[$pkg]:-}" ]] || printf '%s\n' "$pkg"
    done
}

install_packages() {
    local -a missing sudo=()
    mapfile -t missing < <(missing_packages)
    if ((${#missing[@]} == 0)); then
        say "all ${#PACKAGES[@]} packages are installed"
        return
    fi
    if [[ $(id -u) -ne 0 ]]; then
        sudo=(sudo)
    fi
    say "installing ${#missing[@]} missing packages: ${missing[*]}"
    # env rather than export: sudo would drop an exported variable.
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}"
    # The tests start their own MariaDB (tests/lib/mariadbserver.py); a system
    # service the package may have started would only hold port 3306 and memory.
    if command -v systemctl >/dev/null && systemctl is-active --quiet mariadb 2>/dev/null; then
        "${sudo[@]}" systemctl disable --now mariadb || true
    fi
}

# Resolves the Kafka broker and caches its classpath.  kafkaserver.py does the
# work, so that this step and a test run that finds no cache agree on where
# the cache is and when it is still good.  Debian's python, as in test.sh.
fetch_kafka() {
    local cpfile
    if ! cpfile=$(/usr/bin/python3 tests/lib/kafkaserver.py fetch); then
        return 1
    fi
    say "Kafka broker classpath: $cpfile"
}

# Builds tests/compat (Debezium's embedded engine and its consumers, from Maven
# Central into ~/.m2) once, so that the compatibility tests find it built.
fetch_compat() {
    if ! /usr/bin/python3 - <<'PY'
import sys
from pathlib import Path
sys.path.insert(0, "tests/lib")
from maven import module_classpath
module_classpath(Path("tests/compat").resolve(), "debezium-compat-1.jar")
PY
    then
        return 1
    fi
    say "tests/compat built (Debezium 3.6.1.Final)"
}

# Installs tests/requirements.txt into ~/.cache/tidemark/pydeps (tests/lib/pydeps.py),
# again only when the requirements changed: the stamp file holds their hash.
fetch_pydeps() {
    local dir=${TIDEMARK_PYDEPS:-$HOME/.cache/tidemark/pydeps} want have=""
    want=$(sha256sum tests/requirements.txt | cut -d' ' -f1)
    [[ -f "$dir/.stamp" ]] && have=$(cat "$dir/.stamp")
    if [[ "$have" == "$want" ]]; then
        say "Python test packages are installed ($dir)"
        return 0
    fi
    say "installing tests/requirements.txt into $dir"
    rm -rf "$dir.new"
    /usr/bin/python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
        --root-user-action=ignore --target "$dir.new" -r tests/requirements.txt || return 1
    echo "$want" > "$dir.new/.stamp"
    rm -rf "$dir"
    mv "$dir.new" "$dir"
}

# Creates or updates a meson build directory: an existing one keeps its state
# and picks up changed options.
meson_setup() {
    local dir=$1
    shift
    if [[ -f "$dir/meson-private/coredata.dat" ]]; then
        meson setup --reconfigure "$dir" "$@"
    else
        # A directory left by a failed first setup holds no build yet, and
        # plain setup works on it; --reconfigure would refuse.
        meson setup "$dir" "$@"
    fi
}

build() {
    if [[ ! -f meson.build ]]; then
        echo "setup.sh: no meson.build in $PWD; nothing to build" >&2
        return 1
    fi
    say "configuring build/ (debugoptimized, werror)"
    meson_setup build --buildtype=debugoptimized -Dwerror=true
    say "building"
    ninja -C build
}

install_packages
# A Kafka fetch that fails (Maven Central unreachable) must not stop the
# build and the unit tests; the Kafka tests try again and fail loudly if it
# still cannot be had.  With --deps-only, fetching is the whole job.
kafka_ok=1
fetch_kafka || kafka_ok=0
if ((kafka_ok == 0)); then
    echo "setup.sh: could not fetch the Kafka broker for the tests (see above)" >&2
    if ((deps_only)); then
        exit 1
    fi
fi
# The same for Debezium: the compatibility tests build it again and fail
# loudly if they still cannot.
if ! fetch_compat; then
    echo "setup.sh: could not build tests/compat for the compatibility tests (see above)" >&2
    if ((deps_only)); then
        exit 1
    fi
fi
if ! fetch_pydeps; then
    echo "setup.sh: could not install tests/requirements.txt from PyPI (see above)" >&2
    if ((deps_only)); then
        exit 1
    fi
fi
if ((deps_only == 0)); then
    build
fi
