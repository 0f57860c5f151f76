#!/usr/bin/env bash
# Builds tidemark's container image with Debian's own tools, no registry needed.
#
#   scripts/container.sh            the base image (once) and localhost/tidemark:<version>
#   scripts/container.sh --base     only the base image
#
# 1. The base: a Debian bookworm root filesystem made by debootstrap (minbase) from the
#    Debian mirror apt uses, imported with `podman import` as localhost/debian-base:bookworm.
#    Skipped when that image exists.
# 2. The image: deploy/docker/Dockerfile built with `podman build` on that base
#    (--isolation chroot, so it builds where an OCI runtime cannot start containers, as in
#    this project's sandbox), tagged localhost/tidemark:<version> and labelled with a hash of
#    the sources, so a repeated run with unchanged sources reuses it.
#
# Idempotent.  Needs root (debootstrap, podman); installs podman, buildah and debootstrap
# with apt when they are missing.  docs/operations.md, "Deployment: container".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BASE=localhost/debian-base:bookworm
VERSION=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" meson.build | head -1)
IMAGE=localhost/tidemark:${VERSION:-dev}
MIRROR=${TIDEMARK_DEBIAN_MIRROR:-http://deb.debian.org/debian}

say() { printf '==> %s\n' "$*" >&2; }

need=()
for tool in podman buildah debootstrap; do
    command -v "$tool" >/dev/null || need+=("$tool")
done
if ((${#need[@]})); then
    say "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        podman buildah debootstrap uidmap fuse-overlayfs >/dev/null
fi

if ! podman image exists "$BASE"; then
    root=$(mktemp -d /var/tmp/tidemark-rootfs.XXXXXX)
    trap 'rm -rf "$root"' EXIT
    say "debootstrap bookworm (minbase) from $MIRROR"
    debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$MIRROR" >/dev/null
    say "importing it as $BASE"
    tar -C "$root" -c . | podman import - "$BASE" >/dev/null
fi
[[ "${1:-}" == "--base" ]] && exit 0

# The sources that go into the image (what .dockerignore lets through, roughly).
hash=$(git ls-files -z src connectors meson.build meson_options.txt deploy/docker 2>/dev/null |
       xargs -0 sha256sum | sha256sum | cut -c1-16)
if podman image exists "$IMAGE" &&
   [[ $(podman image inspect --format '{{index .Labels "org.tidemark.sources"}}' "$IMAGE") == "$hash" ]]; then
    say "$IMAGE is up to date (sources $hash)"
    exit 0
fi
say "building $IMAGE"
podman build --format docker --isolation chroot --network host --build-arg "BASE=$BASE" \
    --label "org.tidemark.sources=$hash" -f deploy/docker/Dockerfile -t "$IMAGE" . >&2
say "built $IMAGE"
