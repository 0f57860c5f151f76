"""Builds a small Maven module of the repository (bench/flink, tests/compat) once.

`module_classpath(dir, jar_name)` packages the module and resolves its runtime
classpath with mvn (offline first, from ~/.m2, then online), unless the jar and
the classpath file are newer than every source, and returns
"<jar>:<dependencies>" for `java -cp`.  Raises MavenMissing without mvn and
RuntimeError when mvn fails, with the end of its output.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


class MavenMissing(RuntimeError):
    pass


def module_classpath(module: Path, jar_name: str, log=None) -> str:
    jar = module / "target" / jar_name
    cpf = module / "target" / "classpath.txt"
    sources = [module / "pom.xml"] + list((module / "src").rglob("*"))
    newest = max(s.stat().st_mtime for s in sources)
    if not (jar.exists() and cpf.exists() and jar.stat().st_mtime >= newest
            and cpf.stat().st_mtime >= newest):
        mvn = shutil.which("mvn")
        if mvn is None:
            raise MavenMissing(f"no mvn to build {module} with (scripts/setup.sh installs it)")
        cmd = [mvn, "-B", "-q", "-Dstyle.color=never", "-f", str(module / "pom.xml"),
               "package", "dependency:build-classpath", "-Dmdep.includeScope=runtime",
               f"-Dmdep.outputFile={cpf}"]
        out = ""
        for offline in (True, False):
            if log is not None:
                log(f"building {module.name} with mvn ({'offline' if offline else 'online'})")
            r = subprocess.run(cmd[:1] + (["-o"] if offline else []) + cmd[1:],
                               capture_output=True, text=True, timeout=1800)
            out = r.stdout + r.stderr
            if r.returncode == 0:
                break
        else:
            raise RuntimeError(f"mvn could not build {module}:\n{out[-4000:]}")
    return str(jar) + os.pathsep + cpf.read_text().strip()
