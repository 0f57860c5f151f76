"""deploy/systemd/tidemark@.service: the unit systemd would load, checked with systemd's own tools.

- `systemd-analyze verify` accepts it without a single warning (an unknown or
  misspelt key is only a warning there, so any output fails the test);
- `systemd-analyze security --offline` scores its exposure at most
  MAX_EXPOSURE (docs/operations.md records the score);
- its ExecStart, with systemd's specifiers and $STATE_DIRECTORY filled in the
  way systemd fills them, really runs a job, and the unit's KillSignal stops
  it with exit 0 within TimeoutStopSec;
- the exit code a configuration error gives is one RestartPreventExitStatus
  lists, so systemd does not restart a job that cannot start.

There is no systemd as PID 1 here, so the unit is not started by systemd
itself; the command line and the signal are what it would run and send.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tidemark import payload, read_jsonl, run_cli, wait_until

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "tidemark@.service"
MAX_EXPOSURE = 2.0

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                reason="systemd-analyze is not installed (scripts/setup.sh installs it)")


def unit_settings() -> dict:
    """The [Service] settings: key -> list of values, in order."""
    out, section = {}, None
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            k, _, v = line.partition("=")
            out.setdefault(k, []).append(v)
    return out


def installed_copy(tmp_path: Path, bin: Path) -> Path:
    """The unit as `tidemark@demo.service`, with ExecStart's binary the one under test."""
    text = UNIT.read_text().replace("/usr/bin/tidemark", str(bin))
    path = tmp_path / "tidemark@demo.service"
    path.write_text(text)
    return path


def test_verify_is_silent(tmp_path, tidemark_bin):
    unit = installed_copy(tmp_path, tidemark_bin)
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "" and r.stderr.strip() == "", \
        f"systemd-analyze verify:\n{r.stdout}{r.stderr}"


def test_security_exposure(tmp_path, tidemark_bin):
    unit = installed_copy(tmp_path, tidemark_bin)
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout + r.stderr)
    assert m, f"no exposure level in:\n{r.stdout}{r.stderr}"
    score = float(m.group(1))
    print(f"systemd-analyze security: {score}")
    assert score <= MAX_EXPOSURE, f"exposure {score} > {MAX_EXPOSURE}:\n{r.stdout}"


def exec_start(settings: dict, bin: Path, conf: Path, state: Path, instance: str) -> list:
    (line,) = settings["ExecStart"]
    line = (line.replace("/usr/bin/tidemark", str(bin)).replace("/etc/tidemark", str(conf))
            .replace("%i", instance).replace("${STATE_DIRECTORY}", str(state))
            .replace("$TIDEMARK_ARGS", ""))  # unset: systemd drops an empty unquoted $VAR
    assert "%" not in line and "$" not in line, f"an unexpanded specifier or variable: {line}"
    return shlex.split(line)


def test_exec_start_runs_the_job_and_kill_signal_stops_it(cdc, tmp_path):
    s = unit_settings()
    assert s["KillSignal"] == ["SIGTERM"]
    timeout = int(s["TimeoutStopSec"][0])
    assert timeout >= 60, "the stop timeout must leave time for the final checkpoint"
    cdc.sql("CREATE TABLE orders (id int PRIMARY KEY, note text);"
            "INSERT INTO orders VALUES (1, 'a'), (2, 'b');")
    conf, state = tmp_path / "etc", tmp_path / "var-lib-tidemark-orders"
    conf.mkdir()
    state.mkdir(mode=0o700)  # StateDirectory= creates it before ExecStart
    (conf / "orders.sql").write_text(cdc.job(snapshot="initial") +
                                     "SET checkpoint_interval = '200ms';\n")
    cmd = exec_start(s, cdc.bin, conf, state, "orders")
    with open(tmp_path / "stderr.log", "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=tmp_path)
        try:
            topic = cdc.topic_path("orders")
            wait_until(lambda: topic.exists() and len(read_jsonl(topic)) == 2, 60,
                       "the snapshot's two rows", proc)
            cdc.sql("INSERT INTO orders VALUES (3, 'c');")
            wait_until(lambda: len(read_jsonl(topic)) == 3, 60, "the streamed row", proc)
            proc.send_signal(getattr(signal, s["KillSignal"][0]))
            rc = proc.wait(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert rc == 0, (tmp_path / "stderr.log").read_text()[-3000:]
    assert sorted(payload(r)["after"]["id"] for r in read_jsonl(topic)) == [1, 2, 3]
    assert (state / "checkpoints").exists() or any(state.iterdir()), "nothing in the state directory"


def test_configuration_errors_are_not_restarted(tmp_path, tidemark_bin):
    s = unit_settings()
    assert s["Restart"] == ["on-failure"]
    prevent = {int(v) for line in s.get("RestartPreventExitStatus", []) for v in line.split()}
    bad = tmp_path / "bad.sql"
    bad.write_text("CREATE TABLE t () WITH (connector = 'no-such-connector');\n")
    r = run_cli(["run", str(bad), "--state-dir", str(tmp_path / "state")], bin=tidemark_bin)
    assert r.returncode != 0 and "no-such-connector" in r.stderr, r.stderr
    assert r.returncode in prevent, \
        f"a configuration error exits {r.returncode}, which the unit would restart (prevents {prevent})"


TLS_DROP_IN = ROOT / "deploy" / "systemd" / "tls.conf"


def test_tls_drop_in_verifies_and_its_credentials_serve_tls(cdc, tmp_path):
    """deploy/systemd/tls.conf: `systemd-analyze verify` reads the unit with the drop-in and says
    nothing, the exposure stays within bounds, and the daemon started as ExecStart with
    $CREDENTIALS_DIRECTORY as LoadCredential= fills it serves the admin API over TLS with the job
    settings the drop-in's comment gives; `tidemark status` reaches it."""
    unit = installed_copy(tmp_path, cdc.bin)
    drop = tmp_path / "tidemark@demo.service.d"
    drop.mkdir()
    (drop / "tls.conf").write_text(TLS_DROP_IN.read_text())
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "" and r.stderr.strip() == "", \
        f"systemd-analyze verify:\n{r.stdout}{r.stderr}"
    creds = {}
    for line in TLS_DROP_IN.read_text().splitlines():
        if line.startswith("LoadCredential="):
            name, _, path = line.split("=", 1)[1].partition(":")
            creds[name] = path
    assert set(creds) == {"admin-tls.crt", "admin-tls.key"}, creds
    settings = re.findall(r"^#   (SET admin_tls_\w+ = .*;)$", TLS_DROP_IN.read_text(), re.M)
    assert len(settings) == 2, settings

    # What systemd does at start: copy each credential into a private directory.
    cred_dir = tmp_path / "credentials"
    cred_dir.mkdir(mode=0o700)
    ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
    r = subprocess.run(f"openssl req -x509 {ec} -keyout {cred_dir}/admin-tls.key -out "
                       f"{cred_dir}/admin-tls.crt -days 2 -subj /CN=localhost "
                       "-addext subjectAltName=IP:127.0.0.1", shell=True, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    cdc.sql("CREATE TABLE orders (id int PRIMARY KEY, note text);")
    conf, state = tmp_path / "etc", tmp_path / "var-lib-tidemark-orders"
    conf.mkdir()
    state.mkdir(mode=0o700)
    (conf / "orders.sql").write_text(cdc.job() + "SET admin_address = '127.0.0.1:0';\n" +
                                     "\n".join(settings) + "\n")
    cmd = exec_start(unit_settings(), cdc.bin, conf, state, "orders")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDEMARK_ADMIN_")}
    env["CREDENTIALS_DIRECTORY"] = str(cred_dir)
    with open(tmp_path / "stderr.log", "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=tmp_path, env=env)
        try:
            addr = state / "admin.addr"
            wait_until(addr.exists, 60, "admin.addr", proc)
            assert addr.read_text().startswith("https://"), addr.read_text()
            st = subprocess.run([str(cdc.bin), "status", "--live", "--state-dir", str(state),
                                 "--cacert", str(cred_dir / "admin-tls.crt")],
                                capture_output=True, text=True, timeout=30, env=env)
            assert st.returncode == 0 and st.stdout == "ok\n", st
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert rc == 0, (tmp_path / "stderr.log").read_text()[-3000:]
