"""The admin API over TLS (issue 16): SET admin_tls_cert / admin_tls_key / admin_tls_client_ca.

Real certificates made with `openssl req` in the test's directory: a CA, a
server certificate it signs for localhost and 127.0.0.1, a client certificate
it signs, a stray key, an encrypted key.  A daemon with a PostgreSQL source
serves the API over TLS, and every client a deployment uses talks to it:
curl, Python's ssl module, and the CLI (`tidemark status`, `savepoint`,
`stop`) with the token and the CA from the environment, as the Kubernetes
exec probes run it.  Plain HTTP to the TLS port gets a plain 400 that says
to use https:// and never reaches the API, bad files stop
the daemon at start with the configuration exit code and a message naming
the file, and with admin_tls_client_ca only clients with a certificate the CA
signed get in.
"""

import json
import os
import socket
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest

from tidemark import EXIT_CONFIG, read_jsonl, wait_until

TOKEN = "tls-test-token-0123456789"
ORDERS = "CREATE TABLE public.orders (id int PRIMARY KEY, amount numeric(10,2), status text);"


def sh(cmd: str, cwd) -> None:
    r = subprocess.run(cmd, shell=True, cwd=cwd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"{cmd}: {r.stderr}"


@pytest.fixture
def certs(tmp_path):
    d = tmp_path / "tls"
    d.mkdir()
    ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
    sh(f"openssl req -x509 {ec} -keyout ca.key -out ca.pem -days 2 -subj /CN=tidemark-test-ca", d)
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    sh(f"openssl req {ec} -keyout server.key -out server.csr -subj /CN=localhost && "
       "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
       "-extfile san.ext -out server.pem", d)
    sh(f"openssl req {ec} -keyout client.key -out client.csr -subj /CN=operator && "
       "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
       "-out client.pem", d)
    sh("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out stray.key && "
       "openssl pkey -in stray.key -aes256 -passout pass:pw -out encrypted.key", d)
    for key in d.glob("*.key"):
        key.chmod(0o600)
    return d


def tls_job(cdc, certs, extra=()):
    return cdc.job() + "\n".join([
        "SET checkpoint_interval = '300ms';",
        "SET admin_address = '127.0.0.1:0';",
        f"SET admin_tls_cert = '{certs / 'server.pem'}';",
        f"SET admin_tls_key = '{certs / 'server.key'}';",
        *extra]) + "\n"


def address(tm) -> str:
    f = tm.state_dir / "admin.addr"
    wait_until(f.exists, 30, "admin.addr", tm)
    return f.read_text().strip()


def cli(tm, *args, env_extra=None, timeout=60):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDEMARK_ADMIN_")}
    env.update(env_extra or {})
    return subprocess.run([str(tm.bin), *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


def curl(*args):
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True,
                          text=True, timeout=30)


def test_tls_api_for_curl_python_and_the_cli(cdc, certs):
    cdc.sql(ORDERS)
    tm = cdc.start(tls_job(cdc, certs, [f"SET admin_token = '{TOKEN}';"]))
    cdc.wait_slot_ready(tm.proc)
    addr = address(tm)
    assert addr.startswith("https://127.0.0.1:"), addr
    hostport = addr[len("https://"):]
    ca = str(certs / "ca.pem")
    auth = f"Authorization: Bearer {TOKEN}"

    # curl, verifying against the CA; the bearer token still applies over TLS.
    r = curl("--cacert", ca, "-H", auth, f"{addr}/healthz")
    assert r.returncode == 0 and r.stdout == "ok\n", r
    r = curl("--cacert", ca, "-o", "/dev/null", "-w", "%{http_code}", f"{addr}/healthz")
    assert r.stdout == "401", r
    # Without the CA, curl does not trust the certificate (exit 60).
    r = curl("-H", auth, f"{addr}/healthz")
    assert r.returncode == 60, r
    # TLS 1.1 is refused; TLS 1.2 is accepted.
    r = curl("--cacert", ca, "-H", auth, "--tlsv1.1", "--tls-max", "1.1", f"{addr}/healthz")
    assert r.returncode != 0, r
    r = curl("--cacert", ca, "-H", auth, "--tlsv1.2", "--tls-max", "1.2", f"{addr}/healthz")
    assert r.returncode == 0 and r.stdout == "ok\n", r
    # Plain HTTP to the TLS port never reaches the API: a plain 400 says to use https://.
    r = curl("-H", auth, "-w", "\n%{http_code}", f"http://{hostport}/v1/job")
    assert r.stdout.endswith("\n400"), r
    assert json.loads(r.stdout.rsplit("\n", 1)[0]) == {
        "error": f"this port serves the admin API over TLS only: use {addr}"}, r
    with socket.create_connection(("127.0.0.1", int(hostport.rsplit(":", 1)[1])), timeout=10) as s:
        s.sendall(f"POST /v1/stop HTTP/1.1\r\nHost: {hostport}\r\n{auth}\r\n"
                  "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}".encode())
        s.settimeout(10)
        data = b""
        try:
            while chunk := s.recv(4096):
                data += chunk
        except (ConnectionResetError, socket.timeout):
            pass
    assert data.startswith(b"HTTP/1.1 400 "), data
    tm.assert_running("after a plain POST /v1/stop to the TLS port")

    # Python's ssl module: the certificate chain and the IP address are verified.
    ctx = ssl.create_default_context(cafile=ca)
    metrics = tm.admin_get("/metrics", context=ctx, headers={"Authorization": f"Bearer {TOKEN}"})
    assert 'tidemark_errors_total{kind="source_connection"}' in metrics
    with socket.create_connection(("127.0.0.1", int(hostport.rsplit(":", 1)[1])), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            assert t.version() in ("TLSv1.2", "TLSv1.3"), t.version()
            assert t.cipher()[0].startswith(("TLS_AES", "TLS_CHACHA20", "ECDHE")), t.cipher()
    with pytest.raises(urllib.error.URLError) as e:
        tm.admin_get("/healthz", context=ssl.create_default_context())
    assert "CERTIFICATE_VERIFY_FAILED" in str(e.value), e.value

    # The CLI finds https:// in admin.addr and takes the CA and the token from the
    # environment, as deploy/kubernetes' exec probes do.
    env = {"TIDEMARK_ADMIN_TOKEN": TOKEN, "TIDEMARK_ADMIN_CACERT": ca}
    wait_until(lambda: cli(tm, "status", "--ready", "--state-dir", str(tm.state_dir),
                           env_extra=env).returncode == 0, 60, "readiness over TLS", tm)
    live = cli(tm, "status", "--live", "--state-dir", str(tm.state_dir), env_extra=env)
    assert live.returncode == 0 and live.stdout == "ok\n", live
    st = cli(tm, "status", "--state-dir", str(tm.state_dir), env_extra=env)
    assert st.returncode == 0 and "source shop: streaming" in st.stdout, st
    # Without the CA the CLI says what to pass.
    bad = cli(tm, "status", "--live", "--state-dir", str(tm.state_dir),
              env_extra={"TIDEMARK_ADMIN_TOKEN": TOKEN})
    assert bad.returncode == 1 and "not trusted" in bad.stderr and "--cacert" in bad.stderr, bad
    # Plain HTTP from the CLI to the TLS port: told to use https://.
    plain = cli(tm, "status", "--live", "--admin", hostport, env_extra=env)
    assert plain.returncode == 1 and "https://" in plain.stderr, plain
    # --cacert on the command line; a savepoint's path comes back over TLS.
    cdc.sql("INSERT INTO orders VALUES (1, 9.99, 'new');")
    wait_until(lambda: cdc.topic_path("orders").exists()
               and len(read_jsonl(cdc.topic_path("orders"))) == 1, 60, "the row", tm)
    sp = cli(tm, "savepoint", "--admin", addr, "--cacert", ca,
             env_extra={"TIDEMARK_ADMIN_TOKEN": TOKEN}, timeout=120)
    assert sp.returncode == 0 and os.path.isdir(sp.stdout.strip()), sp
    stop = cli(tm, "stop", "--state-dir", str(tm.state_dir), env_extra=env, timeout=120)
    assert stop.returncode == 0, stop
    assert tm.wait_exit(60) == 0, tm.log_tail()
    assert "tls=on" in tm.log_text()


@pytest.mark.parametrize("cert,key,words", [
    ("missing.pem", "server.key", ["admin_tls_cert", "missing.pem", "No such file"]),
    ("server.pem", "stray.key", ["admin_tls_key", "stray.key", "does not belong to"]),
    ("server.pem", "encrypted.key", ["encrypted.key", "passphrase", "openssl pkey"]),
    ("server.key", "server.pem", ["admin_tls_cert", "server.key", "no PEM certificate"]),
    ("server.pem", None, ["admin_tls_key is not set"]),
])
def test_bad_tls_files_are_configuration_errors(cdc, certs, cert, key, words):
    cdc.sql(ORDERS)
    settings = [f"SET admin_tls_cert = '{certs / cert}';"]
    if key is not None:
        settings.append(f"SET admin_tls_key = '{certs / key}';")
    job = cdc.job() + "SET admin_address = '127.0.0.1:0';\n" + "\n".join(settings) + "\n"
    tm = cdc.tidemark(job)
    # explain refuses the job too, before anything exists.
    ex = subprocess.run([str(tm.bin), "explain", str(tm.job_path)], capture_output=True,
                        text=True, timeout=60)
    assert ex.returncode == EXIT_CONFIG, ex
    tm.start()
    assert tm.wait_exit(60) == EXIT_CONFIG, tm.log_tail()
    log = tm.log_text()
    for w in words:
        assert w in log, (w, log[-2000:])
        assert w in ex.stderr, (w, ex.stderr)
    # Checked before the first side effect: no state directory, no slot.
    assert not (tm.state_dir / "admin.addr").exists()
    assert cdc.slot_row() is None


def test_mutual_tls_without_token_on_a_wildcard_address(cdc, certs):
    cdc.sql(ORDERS)
    job = tls_job(cdc, certs, [f"SET admin_tls_client_ca = '{certs / 'ca.pem'}';"]).replace(
        "SET admin_address = '127.0.0.1:0';", "SET admin_address = '0.0.0.0:0';")
    tm = cdc.start(job)
    cdc.wait_slot_ready(tm.proc)
    addr = address(tm)
    ca = str(certs / "ca.pem")
    # No client certificate: the handshake fails, nothing is served.
    r = curl("--cacert", ca, f"{addr}/healthz")
    assert r.returncode != 0 and r.stdout == "", r
    # A certificate from another CA (the server's own key pair is signed by the CA, but
    # a self-signed one is not): refused.
    (certs / "self.pem").write_text("")
    sh("openssl req -x509 -key stray.key -out self.pem -days 2 -subj /CN=intruder", certs)
    r = curl("--cacert", ca, "--cert", str(certs / "self.pem"), "--key",
             str(certs / "stray.key"), f"{addr}/healthz")
    assert r.returncode != 0 and r.stdout == "", r
    r = curl("--cacert", ca, "--cert", str(certs / "client.pem"), "--key",
             str(certs / "client.key"), f"{addr}/v1/job")
    assert r.returncode == 0 and json.loads(r.stdout)["state"], r
    env = {"TIDEMARK_ADMIN_CACERT": ca, "TIDEMARK_ADMIN_CERT": str(certs / "client.pem"),
           "TIDEMARK_ADMIN_KEY": str(certs / "client.key")}
    live = cli(tm, "status", "--live", "--state-dir", str(tm.state_dir), env_extra=env)
    assert live.returncode == 0 and live.stdout == "ok\n", live
    anon = cli(tm, "status", "--live", "--state-dir", str(tm.state_dir),
               env_extra={"TIDEMARK_ADMIN_CACERT": ca})
    assert anon.returncode == 1 and "--cert" in anon.stderr, anon
    assert "tls=mutual" in tm.log_text()
    assert tm.terminate() == 0, tm.log_tail()


def test_pem_from_file_and_env_references(cdc, certs, monkeypatch):
    """admin_tls_cert = '${file:…}' and admin_tls_key = '${env:…}': the PEM text itself, as a
    Kubernetes Secret in an environment variable gives it; explain never prints the key."""
    cdc.sql(ORDERS)
    key_text = (certs / "server.key").read_text()
    monkeypatch.setenv("TM_TEST_ADMIN_KEY", key_text)
    job = cdc.job() + "\n".join([
        "SET admin_address = '127.0.0.1:0';",
        f"SET admin_tls_cert = '${{file:{certs / 'server.pem'}}}';",
        "SET admin_tls_key = '${env:TM_TEST_ADMIN_KEY}';"]) + "\n"
    tm = cdc.tidemark(job)
    ex = subprocess.run([str(tm.bin), "explain", str(tm.job_path)], capture_output=True,
                        text=True, timeout=60)
    assert ex.returncode == 0, ex.stderr
    body = key_text.splitlines()[1]
    assert body not in ex.stdout + ex.stderr and "PRIVATE KEY" not in ex.stdout, ex.stdout
    tm.start()
    cdc.wait_slot_ready(tm.proc)
    assert address(tm).startswith("https://")
    live = cli(tm, "status", "--live", "--state-dir", str(tm.state_dir),
               env_extra={"TIDEMARK_ADMIN_CACERT": str(certs / "ca.pem")})
    assert live.returncode == 0 and live.stdout == "ok\n", live
    assert body not in tm.log_text()
    assert tm.terminate() == 0, tm.log_tail()
    # A key that does not match, given inline: the message names the setting, not the text.
    monkeypatch.setenv("TM_TEST_ADMIN_KEY", (certs / "stray.key").read_text())
    bad = cdc.tidemark(job, name="bad")
    bad.start()
    assert bad.wait_exit(60) == EXIT_CONFIG, bad.log_tail()
    log = bad.log_text()
    assert "admin_tls_key (inline PEM) does not belong to" in log, log[-2000:]
    assert (certs / "stray.key").read_text().splitlines()[1] not in log
