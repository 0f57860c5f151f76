"""deploy/docker/Dockerfile: the image builds and runs a job against a throwaway PostgreSQL.

scripts/container.sh builds the base image from Debian's packages (debootstrap, podman
import) and the image on it (podman build --isolation chroot).  This sandbox cannot start
OCI containers (crun may not set resource limits here), so the image is run the way buildah
runs a build step: `buildah run --isolation chroot` on a working container made from it,
with the host's network.  That is the image's own root filesystem, user (10001), binary and
libraries; what it leaves out is the namespaces and cgroups a container engine adds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tidemark import create_table, payload, read_jsonl, wait_until

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/tidemark:0.1.0"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="podman and debootstrap need root here")


@pytest.fixture(scope="module")
def image():
    r = subprocess.run(["bash", str(ROOT / "scripts" / "container.sh")], capture_output=True,
                       text=True, timeout=1800)
    assert r.returncode == 0, f"scripts/container.sh failed:\n{r.stdout[-3000:]}{r.stderr[-5000:]}"
    return IMAGE


@pytest.fixture
def working_container(image):
    name = subprocess.run(["buildah", "from", image], capture_output=True, text=True,
                          check=True).stdout.strip()
    # `buildah run` gives an image VOLUME a fresh mount of its own on every run, and with
    # chroot isolation that mount and a -v bind on the same path are applied in no fixed
    # order: about one run in four lost the bind (measured with buildah 1.28).  The test binds
    # the volume itself, so the working container drops the declaration (the image keeps it:
    # test_image_metadata checks it).
    subprocess.run(["buildah", "config", "--volume", "/var/lib/tidemark-", name], check=True,
                   capture_output=True)
    yield name
    subprocess.run(["buildah", "rm", name], capture_output=True)


def kill_tree(pid: int) -> None:
    """SIGKILL to pid and every descendant: buildah does not pass a kill on to the chroot'd daemon."""
    kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    for k in kids:
        kill_tree(int(k))
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass


def inspect(image: str, fmt: str) -> str:
    return subprocess.run(["podman", "image", "inspect", "--format", fmt, image],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_image_metadata(image):
    assert inspect(image, "{{.Config.User}}") == "10001:10001"
    assert inspect(image, "{{json .Config.Entrypoint}}") == '["tidemark"]'
    assert "/var/lib/tidemark" in inspect(image, "{{json .Config.Volumes}}")
    assert '"status","--live"' in inspect(image, "{{json .Config.Healthcheck}}")
    # Only runtime libraries: no compiler or headers in the final stage.
    size = int(inspect(image, "{{.Size}}"))
    assert size < 500 * 1024 * 1024, size


def test_image_runs_a_job(cdc, working_container, tmp_path):
    cdc.sql("CREATE TABLE orders (id int PRIMARY KEY, note text); INSERT INTO orders VALUES (1, 'a');")
    conf, state = tmp_path / "etc", tmp_path / "state"
    conf.mkdir()
    state.mkdir()
    os.chown(state, 10001, 10001)  # the image's user owns its volume
    job = "\n".join([
        create_table("shop", {"connector": "postgres-cdc", "dsn": cdc.dsn(),
                              "table": "public.orders", "slot": cdc.slot,
                              "publication": cdc.publication, "snapshot": "initial"}),
        create_table("out", {"connector": "file", "path": "/var/lib/tidemark/out"}),
        "INSERT INTO out SELECT * FROM shop;",
        "SET checkpoint_interval = '200ms';",
        "SET admin_address = '127.0.0.1:0';", ""])
    (conf / "job.sql").write_text(job)
    os.chmod(conf / "job.sql", 0o644)
    base = ["buildah", "run", "--isolation", "chroot", "--network", "host",
            "-v", f"{state}:/var/lib/tidemark", "-v", f"{conf}:/etc/tidemark:ro", working_container,
            "--"]
    log = open(tmp_path / "container.log", "wb")
    # The image's CMD: run /etc/tidemark/job.sql --state-dir /var/lib/tidemark.
    proc = subprocess.Popen(base + ["tidemark", "run", "/etc/tidemark/job.sql", "--state-dir",
                                    "/var/lib/tidemark"], stdout=log, stderr=subprocess.STDOUT)
    try:
        topic = state / "out" / "shop.public.orders.jsonl"
        wait_until(lambda: topic.exists() and len(read_jsonl(topic)) == 1, 120,
                   f"the snapshot row (see {tmp_path / 'container.log'})", proc)
        cdc.sql("INSERT INTO orders VALUES (2, 'b');")
        wait_until(lambda: len(read_jsonl(topic)) == 2, 60, "the streamed row", proc)
        # The HEALTHCHECK's command, in the image, against the running daemon.
        health = subprocess.run(base + ["tidemark", "status", "--live", "--state-dir",
                                        "/var/lib/tidemark"], capture_output=True, text=True,
                                timeout=60)
        assert health.returncode == 0 and health.stdout.strip() == "ok", health
        # Files the daemon wrote belong to the image's user.
        assert (state / "checkpoints").stat().st_uid == 10001
        stop = subprocess.run(base + ["tidemark", "stop", "--state-dir", "/var/lib/tidemark"],
                              capture_output=True, text=True, timeout=120)
        assert stop.returncode == 0, stop
        assert proc.wait(timeout=120) == 0, (tmp_path / "container.log").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            kill_tree(proc.pid)
            proc.wait()
        log.close()
    ids = sorted(payload(r)["after"]["id"] for r in read_jsonl(topic))
    assert ids == [1, 2]
