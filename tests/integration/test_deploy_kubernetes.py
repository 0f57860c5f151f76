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
  ${file:…} secrets read from the Secret's values.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

import pydeps
from tidemark import run_cli

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
        sc = tm["securityContext"]
        assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
        assert pod.get("securityContext", {}).get("runAsNonRoot") or sc.get("runAsNonRoot")


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
    sts = [d for d in by_kind("StatefulSet")
           if matched[0]["spec"]["selector"].items()
           <= d["spec"]["template"]["metadata"]["labels"].items()]
    assert len(sts) == 1, "the Service must select one StatefulSet's pods"


@pytest.mark.parametrize("cm", [d["metadata"]["name"] for _, d in documents()
                                if d["kind"] == "ConfigMap"])
def test_jobs_are_accepted_by_explain(cm, tmp_path, tidemark_bin):
    (conf,) = [d for d in by_kind("ConfigMap") if d["metadata"]["name"] == cm]
    secret_dir = tmp_path / "secret"
    secret_dir.mkdir()
    for s in by_kind("Secret"):
        for k, v in s["stringData"].items():
            (secret_dir / k).write_text(v + "\n")
    for name, text in conf["data"].items():
        job = tmp_path / name
        job.write_text(text.replace("/etc/tidemark/secret/", f"{secret_dir}/"))
        r = run_cli(["explain", str(job)], bin=tidemark_bin)
        assert r.returncode == 0, f"{cm}/{name}: tidemark explain failed:\n{r.stderr}"
        assert "change-me" not in r.stdout, "explain printed a secret"
