"""deploy/kubernetes: every manifest valid for a current Kubernetes, and the parts agreeing.

- each document validates, strictly (unknown fields are errors), against the
  Kubernetes schemas kubernetes-validate ships (its newest version; its CLI,
  in a process of its own, so that its jsonschema and attrs from PyPI never
  meet the older ones pytest has loaded from Debian); the
  ServiceMonitor is a Prometheus Operator resource with no schema there, so
  its fields are checked here against the Service it selects;
- the references hold: volumes name the ConfigMap and Secret that exist, the
  Service and ServiceMonitor select the StatefulSet's pods and name its port,
  the probes ask `tidemark status` about the state directory the job runs with;
- every job in a ConfigMap is accepted by `tidemark explain`, with its
  ${file:…} secrets read from the Secret's values, and its admin TLS files from
  a certificate made with `openssl req` in place of the TLS Secret's
  placeholders;
- the probes, run exactly as the StatefulSet writes them (command and
  environment), pass against a live daemon that serves TLS as the ConfigMap
  asks, with a certificate made for the Service's name only.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

import pydeps
from tidemark import run_cli, wait_until

ROOT = Path(__file__).resolve().parents[2]
KDIR = ROOT / "deploy" / "kubernetes"


def documents() -> list:
    docs = []
    for path in sorted(KDIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path.name, doc))
    return docs


def by_kind(kind: str) -> list:
    return [d for _, d in documents() if d["kind"] == kind]


def test_manifests_validate_strictly():
    files = sorted(KDIR.glob("*.yaml"))
    r = pydeps.run("kubernetes_validate", ["--strict", *files])
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    passed = re.findall(r"passed for resource (\S+) against version (\S+)", out)
    print("\n".join(f"{res}: Kubernetes {v}" for res, v in passed))
    want = [f"{d['kind'].lower()}/{d['metadata']['name']}" for _, d in documents()
            if not d["apiVersion"].startswith("monitoring.coreos.com/")]
    assert sorted(res for res, _ in passed) == sorted(want), out
    kinds = {d["kind"] for _, d in documents()}
    assert {"StatefulSet", "ConfigMap", "Secret", "Service", "ServiceMonitor"} <= kinds, kinds


def test_statefulsets_hang_together():
    configmaps = {d["metadata"]["name"]: d for d in by_kind("ConfigMap")}
    secrets = {d["metadata"]["name"]: d for d in by_kind("Secret")}
    for sts in by_kind("StatefulSet"):
        spec = sts["spec"]
        pod = spec["template"]["spec"]
        labels = spec["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= labels.items()
        assert spec["replicas"] == 1, "one tidemark per job: a second would share its slot"
        assert pod["terminationGracePeriodSeconds"] >= 60, "time for the final checkpoint"
        claims = {c["metadata"]["name"] for c in spec["volumeClaimTemplates"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        (tm,) = [c for c in pod["containers"] if c["name"] == "tidemark"]
        args = tm["args"]
        assert args[0] == "run" and "--state-dir" in args
        state_dir = args[args.index("--state-dir") + 1]
        mounts = {m["mountPath"]: m["name"] for m in tm["volumeMounts"]}
        assert mounts[state_dir] in claims, "the state directory must be on a PersistentVolumeClaim"
        job_file = Path(args[1])
        assert mounts[str(job_file.parent)] in volumes
        cm = volumes[mounts[str(job_file.parent)]]["configMap"]["name"]
        assert job_file.name in configmaps[cm]["data"], f"{cm} has no {job_file.name}"
        for v in volumes.values():
            if "secret" in v:
                assert v["secret"]["secretName"] in secrets
        for probe, flag in (("livenessProbe", "--live"), ("readinessProbe", "--ready")):
            cmd = tm[probe]["exec"]["command"]
            assert cmd[:3] == ["tidemark", "status", flag], cmd
            assert cmd[cmd.index("--state-dir") + 1] == state_dir, cmd
        # Every file the job or the probes name is a key of a Secret mounted there.
        files = {}
        for m in tm["volumeMounts"]:
            v = volumes.get(m["name"], {})
            if "secret" in v:
                for key in secrets[v["secret"]["secretName"]]["stringData"]:
                    files[f"{m['mountPath']}/{key}"] = v["secret"]["secretName"]
        env = {e["name"]: e.get("value") for e in tm.get("env", [])}
        job_text = configmaps[cm]["data"][job_file.name]
        named = re.findall(r"SET admin_tls_\w+ = '([^']+)'", job_text)
        if named:
            assert env.get("TIDEMARK_ADMIN_CACERT") in files, "the probes need the CA over TLS"
            assert env.get("TIDEMARK_ADMIN_TLS_SERVER_NAME"), "the name the certificate holds"
        for path in named + re.findall(r"\$\{file:([^}]+)\}", job_text):
            assert path in files, f"{path} is no key of a mounted Secret"
            assert tm_mount_readonly(tm, path), f"{path} is mounted writable"
        sc = tm["securityContext"]
        assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
        assert pod.get("securityContext", {}).get("runAsNonRoot") or sc.get("runAsNonRoot")


def tm_mount_readonly(container, path) -> bool:
    return any(path.startswith(m["mountPath"] + "/") and m.get("readOnly")
               for m in container["volumeMounts"])


def test_service_monitor_scrapes_the_admin_port():
    services = by_kind("Service")
    secrets = {d["metadata"]["name"]: d for d in by_kind("Secret")}
    (sm,) = by_kind("ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    sel = sm["spec"]["selector"]["matchLabels"]
    matched = [s for s in services if sel.items() <= s["metadata"]["labels"].items()]
    assert len(matched) == 1, "the ServiceMonitor must select the job's Service"
    ports = {p["name"] for p in matched[0]["spec"]["ports"]}
    (ep,) = sm["spec"]["endpoints"]
    assert ep["port"] in ports and ep["path"] == "/metrics"
    cred = ep["authorization"]["credentials"]
    assert ep["authorization"]["type"] == "Bearer"
    assert cred["key"] in secrets[cred["name"]]["stringData"], "the token the job requires"
    # The job serves TLS, so Prometheus speaks HTTPS, with the CA of the TLS Secret.
    assert ep["scheme"] == "https", ep
    ca = ep["tlsConfig"]["ca"]["secret"]
    assert secrets[ca["name"]]["type"] == "kubernetes.io/tls" and ca["key"] in \
        secrets[ca["name"]]["stringData"], ca
    assert ep["tlsConfig"]["serverName"].startswith(matched[0]["metadata"]["name"] + "."), ep
    sts = [d for d in by_kind("StatefulSet")
           if matched[0]["spec"]["selector"].items()
           <= d["spec"]["template"]["metadata"]["labels"].items()]
    assert len(sts) == 1, "the Service must select one StatefulSet's pods"


def make_tls_secret(d: Path, name: str) -> None:
    """tls.crt, tls.key and ca.crt as cert-manager writes them: a CA, and a certificate it
    signs for `name` only."""
    d.mkdir(parents=True, exist_ok=True)
    ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
    (d / "san.ext").write_text(f"subjectAltName=DNS:{name}\n")
    for cmd in (f"openssl req -x509 {ec} -keyout ca.key -out ca.crt -days 2 -subj /CN=k8s-ca",
                f"openssl req {ec} -keyout tls.key -out tls.csr -subj /CN={name}",
                "openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
                "-extfile san.ext -out tls.crt"):
        r = subprocess.run(cmd, shell=True, cwd=d, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr


def secret_files(tmp_path: Path) -> dict:
    """{mount path in the pod: directory here} with every Secret's keys as files; the TLS
    Secrets' placeholders replaced by a real certificate for the ServiceMonitor's name."""
    (sm,) = by_kind("ServiceMonitor")
    server_name = sm["spec"]["endpoints"][0]["tlsConfig"]["serverName"]
    out = {}
    for sts in by_kind("StatefulSet") + by_kind("Pod"):
        pod = sts["spec"]["template"]["spec"] if sts["kind"] == "StatefulSet" else sts["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        for c in pod["containers"]:
            for m in c.get("volumeMounts", []):
                v = volumes.get(m["name"], {})
                if "secret" in v:
                    out.setdefault(m["mountPath"], set()).add(v["secret"]["secretName"])
    secrets = {d["metadata"]["name"]: d for d in by_kind("Secret")}
    dirs = {}
    # Several pods mount their own Secret at one path: the directory holds all their keys.
    for mount, names in out.items():
        d = tmp_path / "secrets" / mount.strip("/").replace("/", "_")
        d.mkdir(parents=True, exist_ok=True)
        for name in sorted(names):
            if secrets[name].get("type") == "kubernetes.io/tls":
                make_tls_secret(d, server_name)
            else:
                for k, v in secrets[name]["stringData"].items():
                    (d / k).write_text(v + "\n")
        dirs[mount] = d
    return dirs


def in_here(text: str, dirs: dict) -> str:
    for mount, d in dirs.items():
        text = text.replace(mount + "/", f"{d}/")
    return text


@pytest.mark.parametrize("cm", [d["metadata"]["name"] for _, d in documents()
                                if d["kind"] == "ConfigMap"])
def test_jobs_are_accepted_by_explain(cm, tmp_path, tidemark_bin):
    (conf,) = [d for d in by_kind("ConfigMap") if d["metadata"]["name"] == cm]
    dirs = secret_files(tmp_path)
    for name, text in conf["data"].items():
        job = tmp_path / name
        job.write_text(in_here(text, dirs))
        r = run_cli(["explain", str(job)], bin=tidemark_bin)
        assert r.returncode == 0, f"{cm}/{name}: tidemark explain failed:\n{r.stderr}"
        assert "change-me" not in r.stdout, "explain printed a secret"


def test_probes_pass_over_tls_as_the_statefulset_runs_them(cdc):
    """The StatefulSet's probe commands and environment, against a daemon that serves the admin
    API as the ConfigMap does (wildcard address, token, TLS with a certificate for the
    Service's name only, not for 127.0.0.1 where admin.addr points)."""
    (sts,) = [d for d in by_kind("StatefulSet") if d["metadata"]["name"] == "tidemark-orders"]
    (tm_c,) = [c for c in sts["spec"]["template"]["spec"]["containers"] if c["name"] == "tidemark"]
    (conf,) = [d for d in by_kind("ConfigMap")
               if d["metadata"]["name"] == sts["metadata"]["name"]]
    dirs = secret_files(cdc.dir)
    admin = [line for line in conf["data"]["job.sql"].splitlines()
             if line.startswith("SET admin_")]
    assert any("admin_tls_cert" in line for line in admin), admin
    settings = [in_here(line, dirs).replace("0.0.0.0:9091", "0.0.0.0:0") for line in admin]
    cdc.sql("CREATE TABLE public.orders (id int PRIMARY KEY, note text);")
    tm = cdc.start(cdc.job() + "\n".join(settings) + "\n")
    cdc.wait_slot_ready(tm.proc)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDEMARK_ADMIN_")}
    token = (dirs["/etc/tidemark/secret"] / "admin-token").read_text().strip()
    for e in tm_c["env"]:
        env[e["name"]] = token if "valueFrom" in e else in_here(e["value"], dirs)

    def probe(name):
        state = tm_c["args"][tm_c["args"].index("--state-dir") + 1]
        cmd = [str(tm.state_dir) if a == state else a for a in tm_c[name]["exec"]["command"]]
        cmd[0] = str(tm.bin)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=env)

    assert (tm.state_dir / "admin.addr").read_text().startswith("https://127.0.0.1:")
    for name in ("startupProbe", "livenessProbe"):
        r = probe(name)
        assert r.returncode == 0 and r.stdout == "ok\n", (name, r)
    wait_until(lambda: probe("readinessProbe").returncode == 0, 60, "the readiness probe", tm)
    # Without the server name the certificate (for the Service only) does not match 127.0.0.1.
    env.pop("TIDEMARK_ADMIN_TLS_SERVER_NAME")
    r = probe("livenessProbe")
    assert r.returncode == 1 and "not for 127.0.0.1" in r.stderr, r
    assert tm.terminate() == 0, tm.log_tail()
