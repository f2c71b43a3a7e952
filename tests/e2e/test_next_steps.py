"""What a user of sidecar TLS termination tries next, each against the scenario's
cluster (steps 1 to 9 run once for the module; each test puts back what it changed):
SIMPLE mode; MUTUAL refusing a client with no certificate, another CA's, an expired
one; the TLS block ignored under STRICT, with ``analyze``'s warning; a renewed server
certificate picked up within seconds; an invalid Sidecar refused; the flag off; the
app killed and back; the workload certificate rotated under load."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from meshlet.cluster.client import ClusterClient
from meshlet.scenario.compare import parse_table
from meshlet.scenario.steps import SCENARIO
from tests.e2e.support import EXAMPLES, E2ECluster, e2e_cluster, failed

pytestmark = pytest.mark.integration

HOST = "httpbin.test.svc.cluster.local"
CLIENT_CERT = (
    "--cacert",
    "/tmp/ca.crt",
    "--key",
    "/tmp/client.test.svc.cluster.local.key",
    "--cert",
    "/tmp/client.test.svc.cluster.local.crt",
)
HTTPS = f"https://{HOST}:8443/status/200"
FLAG = "values.pilot.env.ENABLE_TLS_ON_SIDECAR_INGRESS"
CERT_ROW = "file-cert:/etc/istio/tls-certs/tls.crt~/etc/istio/tls-certs/tls.key"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2ECluster]:
    with e2e_cluster(tmp_path_factory.mktemp("next")) as ready:
        verdicts = ready.run_steps(SCENARIO[:9])
        assert failed(verdicts) == [], ready.transcript() + ready.daemon_log()
        yield ready


def wait_until(what: str, check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def external(cluster: E2ECluster, *argv: str) -> subprocess.CompletedProcess[str]:
    return cluster.meshlet("exec", cluster.pod("default", "app=sleep"), "-c", "sleep", "--", *argv)


def status_of(cluster: E2ECluster, *curl_args: str, url: str = HTTPS) -> str:
    """The HTTP status an outside client gets (``000`` when the connection fails)."""
    done = external(
        cluster, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", *curl_args,
        f"-HHost:{HOST}", url,
    )  # fmt: skip
    return done.stdout.strip()[-3:] or "000"


def access_log_lines(cluster: E2ECluster) -> int:
    done = cluster.meshlet(
        "-n", "test", "logs", cluster.pod("test", "app=httpbin"), "-c", "httpbin"
    )
    assert done.returncode == 0, done.stderr
    return sum("/status/" in line for line in done.stdout.splitlines())


def apply(cluster: E2ECluster, text: str) -> subprocess.CompletedProcess[str]:
    return cluster.meshlet("-n", "test", "apply", "-f", "-", stdin=text)


def sidecar_yaml(replace: Callable[[str], str] = lambda text: text) -> str:
    return replace((EXAMPLES / "sidecar.yaml").read_text())


def restore_examples(cluster: E2ECluster) -> None:
    for name in ("sidecar.yaml", "peer-authentication.yaml"):
        done = cluster.meshlet("-n", "test", "apply", "-f", str(EXAMPLES / name))
        assert done.returncode == 0, done.stderr
    wait_until("the scenario's answer again", lambda: status_of(cluster, *CLIENT_CERT) == "200")


def test_simple_mode_lets_a_client_without_a_certificate_in(cluster: E2ECluster) -> None:
    assert status_of(cluster, "--cacert", "/tmp/ca.crt") == "000"  # MUTUAL: refused
    simple = sidecar_yaml(
        lambda text: "\n".join(
            line.replace("mode: MUTUAL", "mode: SIMPLE")
            for line in text.splitlines()
            if "caCertificates" not in line
        )
    )
    try:
        assert apply(cluster, simple).returncode == 0
        wait_until("SIMPLE", lambda: status_of(cluster, "--cacert", "/tmp/ca.crt") == "200")
        assert status_of(cluster, *CLIENT_CERT) == "200"
    finally:
        restore_examples(cluster)
    assert status_of(cluster, "--cacert", "/tmp/ca.crt") == "000"


def _client_cert(
    cluster: E2ECluster, name: str, issuer_key: Any, issuer: x509.Name, not_after: datetime
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name}.test")]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=30))
        .not_valid_after(not_after)
        .sign(issuer_key, hashes.SHA256())
    )
    (cluster.workdir / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (cluster.workdir / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pod = cluster.pod("default", "app=sleep")
    for suffix in ("crt", "key"):
        done = cluster.meshlet("cp", f"{name}.{suffix}", f"default/{pod}:/tmp/{name}.{suffix}")
        assert done.returncode == 0, done.stderr


def test_mutual_refuses_no_certificate_another_ca_and_an_expired_one(
    cluster: E2ECluster,
) -> None:
    work = cluster.workdir
    example_key = serialization.load_pem_private_key(
        (work / "example.com.key").read_bytes(), password=None
    )
    example = x509.load_pem_x509_certificate((work / "example.com.crt").read_bytes())
    _client_cert(
        cluster, "expired", example_key, example.subject, datetime.now(UTC) - timedelta(days=1)
    )
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "another CA")])
    _client_cert(cluster, "stranger", other_key, other, datetime.now(UTC) + timedelta(days=30))

    before = access_log_lines(cluster)
    for client in (
        (),
        ("--key", "/tmp/stranger.key", "--cert", "/tmp/stranger.crt"),
        ("--key", "/tmp/expired.key", "--cert", "/tmp/expired.crt"),
    ):
        done = external(
            cluster, "curl", "-IsS", "--cacert", "/tmp/ca.crt", *client, f"-HHost:{HOST}", HTTPS
        )
        assert done.returncode != 0, (client, done.stdout)
        assert "HTTP/" not in done.stdout, client
    assert access_log_lines(cluster) == before  # nothing reached httpbin
    assert status_of(cluster, *CLIENT_CERT) == "200"
    wait_until("the access log", lambda: access_log_lines(cluster) == before + 1, 5)


def test_tls_is_ignored_under_strict_and_analyze_says_so(cluster: E2ECluster) -> None:
    strict = (
        "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\nmetadata:\n"
        "  name: disable-peer-auth-for-external-mtls-port\n  namespace: test\nspec:\n"
        "  selector:\n    matchLabels:\n      app: httpbin\n  mtls:\n    mode: STRICT\n"
    )
    try:
        assert apply(cluster, strict).returncode == 0
        # the client's own TLS meets the mesh certificate, which its CA does not know
        wait_until("STRICT on 9080", lambda: status_of(cluster, *CLIENT_CERT) == "000")
        refused = external(cluster, "curl", "-IsS", *CLIENT_CERT, f"-HHost:{HOST}", HTTPS)
        assert "SSL certificate problem" in refused.stderr, refused.stderr
        # inside the mesh, 8443 keeps mesh mTLS and works
        inside = cluster.meshlet(
            "-n", "test", "exec", cluster.pod("test", "app=sleep"), "-c", "sleep", "--",
            "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "http://httpbin:8443/status/200",
        )  # fmt: skip
        assert inside.stdout == "200", inside
        analyzed = cluster.meshlet("analyze", "-n", "test")
        assert "Warning [MSH0001] (Sidecar test/ingress-sidecar)" in analyzed.stdout
        assert "the port's mTLS mode is STRICT" in analyzed.stdout
        assert "portLevelMtls: {9080: {mode: DISABLE}}" in analyzed.stdout
    finally:
        restore_examples(cluster)
    assert "MSH0001" not in cluster.meshlet("analyze", "-n", "test").stdout


def _served_serial(cluster: E2ECluster) -> int:
    """The serial of the certificate the sidecar presents on 8443, as openssl sees it."""
    done = external(
        cluster,
        "sh",
        "-c",
        f"openssl s_client -connect {HOST}:8443 -servername {HOST} -CAfile /tmp/ca.crt "
        "-cert /tmp/client.test.svc.cluster.local.crt "
        "-key /tmp/client.test.svc.cluster.local.key </dev/null 2>/dev/null "
        "| openssl x509 -noout -serial",
    )
    assert done.stdout.startswith("serial="), done
    return int(done.stdout.strip().removeprefix("serial="), 16)


def _table_serial(cluster: E2ECluster) -> str:
    done = cluster.meshlet("proxy-config", "secret", f"{cluster.pod('test', 'app=httpbin')}.test")
    rows = {row[0]: row for row in parse_table(done.stdout).rows}
    return rows[CERT_ROW][4] if CERT_ROW in rows else ""


def _renew(cluster: E2ECluster, cert: str) -> float:
    started = time.monotonic()
    done = cluster.sh(
        f"meshlet -n test create secret tls httpbin-mtls-termination --cert ./{cert} "
        "--key ./httpbin.test.svc.cluster.local.key --dry-run=client -o yaml "
        "| meshlet apply -f -"
    )
    assert done.exit_code == 0, done.output
    assert "secret/httpbin-mtls-termination configured" in done.output
    return started


def test_a_renewed_certificate_is_served_within_seconds(cluster: E2ECluster) -> None:
    assert _table_serial(cluster) == "1" and _served_serial(cluster) == 1
    done = cluster.sh(
        "openssl x509 -req -days 30 -CA example.com.crt -CAkey example.com.key "
        "-set_serial 4242 -in httpbin.test.svc.cluster.local.csr -out renewed.crt"
    )
    assert done.exit_code == 0, done.output
    try:
        started = _renew(cluster, "renewed.crt")
        wait_until("the new serial", lambda: _table_serial(cluster) == "4242", 10)
        assert _served_serial(cluster) == 4242
        assert time.monotonic() - started < 10
        assert status_of(cluster, *CLIENT_CERT) == "200"
    finally:
        _renew(cluster, "httpbin.test.svc.cluster.local.crt")
        wait_until("serial 1 again", lambda: _table_serial(cluster) == "1", 10)
    assert _served_serial(cluster) == 1


def test_an_invalid_sidecar_is_refused_and_nothing_changes(cluster: E2ECluster) -> None:
    def stored() -> str:
        done = cluster.meshlet("-n", "test", "get", "sidecar", "ingress-sidecar", "-o", "yaml")
        assert done.returncode == 0, done.stderr
        return done.stdout

    before = stored()
    istio_mutual = apply(cluster, sidecar_yaml(lambda t: t.replace("MUTUAL", "ISTIO_MUTUAL")))
    assert istio_mutual.returncode == 1
    assert (
        "configuration is invalid: cannot set mode to ISTIO_MUTUAL in sidecar ingress tls"
        in istio_mutual.stderr
    )
    no_ca = apply(
        cluster,
        sidecar_yaml(lambda t: "\n".join(x for x in t.splitlines() if "caCertificates" not in x)),
    )
    assert no_ca.returncode == 1
    assert "MUTUAL TLS requires a client CA bundle" in no_ca.stderr
    assert stored() == before
    assert status_of(cluster, *CLIENT_CERT) == "200"


def test_with_the_flag_off_the_tls_block_has_no_effect(cluster: E2ECluster) -> None:
    plain = f"http://{HOST}:8443/status/200"
    try:
        done = cluster.meshlet("install", "--set", f"{FLAG}=false")
        assert done.returncode == 0, done.stderr
        wait_until("the TLS block ignored", lambda: status_of(cluster, *CLIENT_CERT) == "000", 30)
        # 9080 is the app's port, plain TCP: the app itself answers plaintext
        answer = external(cluster, "curl", "-IsS", f"-HHost:{HOST}", plain)
        assert answer.returncode == 0, answer
        assert "Server: gunicorn" in answer.stdout
        assert "istio-envoy" not in answer.stdout
        analyzed = cluster.meshlet("analyze", "-n", "test")
        assert "ENABLE_TLS_ON_SIDECAR_INGRESS is off" in analyzed.stdout
    finally:
        done = cluster.meshlet("install", "--set", f"{FLAG}=true")
        assert done.returncode == 0, done.stderr
        wait_until("TLS again", lambda: status_of(cluster, *CLIENT_CERT) == "200", 30)


def test_the_app_killed_gives_503_from_the_sidecar_until_it_is_back(
    cluster: E2ECluster,
) -> None:
    name = cluster.pod("test", "app=httpbin")
    client = ClusterClient(cluster.home)
    (pod,) = client.get("/Pod", namespace="test", names=[name])
    pod_ip = pod["status"]["podIP"]
    app_pid = int(client.locate("test", name, "httpbin")["pid"])
    # straight to the pod (a Service drops a pod that is not Ready, as Kubernetes does)
    curl = (
        f"curl -sS -o /dev/null -w '%{{http_code}}' {' '.join(CLIENT_CERT)} "
        f"--resolve {HOST}:9080:{pod_ip} https://{HOST}:9080/status/200"
    )
    loop = (
        "end=$(($(date +%s) + 20)); seen=0\n"
        'while [ "$(date +%s)" -lt "$end" ]; do\n'
        f'  code=$({curl} 2>/dev/null); printf "%s " "$code"\n'
        '  [ "$code" = 503 ] && seen=1\n'
        '  [ "$seen" = 1 ] && [ "$code" = 200 ] && break\n'
        "  sleep 0.05\n"
        "done\n"
    )
    binary = cluster.runner.env["PATH"].split(":")[0] + "/meshlet"
    poller = subprocess.Popen(
        [
            binary,
            "exec",
            cluster.pod("default", "app=sleep"),
            "-c",
            "sleep",
            "--",
            "sh",
            "-c",
            loop,
        ],
        env=cluster.runner.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)
        os.kill(app_pid, signal.SIGKILL)  # the app crashes
        out, err = poller.communicate(timeout=40)
    finally:
        if poller.poll() is None:
            poller.kill()
            poller.communicate()
    codes = out.split()
    assert codes and codes[0] == "200", (codes, err)
    assert "503" in codes and codes[-1] == "200", (codes, err)
    assert set(codes) <= {"200", "503"}, codes
    first, last = codes.index("503"), len(codes) - 1 - codes[::-1].index("503")
    assert set(codes[first : last + 1]) == {"503"}, codes  # 503 until the app is back
    wait_until("the pod Ready again", lambda: _ready(cluster, name))


def _ready(cluster: E2ECluster, name: str) -> bool:
    done = cluster.meshlet("-n", "test", "get", "pod", name)
    return " 2/2 " in done.stdout and "Running" in done.stdout


def _httpbin(secret_ttl: str | None = None) -> str:
    """The scenario's httpbin, with ``proxyMetadata.SECRET_TTL`` on its pods when given."""
    text = (EXAMPLES / "httpbin.yaml").read_text()
    if secret_ttl is None:
        return text
    config = f"""'{{"proxyMetadata": {{"SECRET_TTL": "{secret_ttl}"}}}}'"""
    return text.replace(
        "      annotations:\n", f"      annotations:\n        proxy.istio.io/config: {config}\n", 1
    )


def _roll_httpbin(cluster: E2ECluster, text: str, old: str) -> str:
    assert apply(cluster, text).returncode == 0

    def new_pod_ready() -> str | None:
        done = cluster.meshlet(
            "-n", "test", "get", "pod", "-l", "app=httpbin", "-o", "jsonpath={.items..metadata.name}"
        )  # fmt: skip
        names = done.stdout.split()
        if len(names) != 1 or names[0] == old:
            return None
        ready = cluster.meshlet("-n", "test", "wait", "--for=condition=Ready", f"pod/{names[0]}")
        return names[0] if ready.returncode == 0 else None

    return str(wait_until("the new httpbin pod", new_pod_ready, 60))


def _default_serial(cluster: E2ECluster, pod: str) -> str:
    done = cluster.meshlet("proxy-config", "secret", f"{pod}.test")
    rows = {row[0]: row for row in parse_table(done.stdout).rows}
    return rows["default"][4] if "default" in rows else ""


def test_the_default_certificate_rotates_without_a_failed_request(cluster: E2ECluster) -> None:
    original = cluster.pod("test", "app=httpbin")
    pod = _roll_httpbin(cluster, _httpbin(secret_ttl="16s"), original)
    try:
        first = wait_until("the workload certificate", lambda: _default_serial(cluster, pod))
        # in the mesh: the in-mesh sleep calls httpbin:8080 (mesh mTLS) for 20 seconds
        loop = (
            "end=$(($(date +%s) + 20))\n"
            'while [ "$(date +%s)" -lt "$end" ]; do\n'
            "  printf '%s ' $(curl -s -o /dev/null -w '%{http_code}' http://httpbin:8080/status/200)\n"
            "  sleep 0.2\n"
            "done\n"
        )
        binary = cluster.runner.env["PATH"].split(":")[0] + "/meshlet"
        poller = subprocess.Popen(
            [binary, "-n", "test", "exec", cluster.pod("test", "app=sleep"), "-c", "sleep",
             "--", "sh", "-c", loop],
            env=cluster.runner.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            rotated = wait_until(
                "a rotated certificate",
                lambda: (serial := _default_serial(cluster, pod)) not in ("", first) and serial,
                20,
            )
            codes, errors = poller.communicate(timeout=40)
        finally:
            if poller.poll() is None:
                poller.kill()
                poller.wait()
        assert rotated != first
        answers = codes.split()
        assert len(answers) > 20, (codes, errors)
        assert set(answers) == {"200"}, codes
    finally:
        now = cluster.pod("test", "app=httpbin")
        _roll_httpbin(cluster, _httpbin(), now)
        wait_until("the scenario's answer", lambda: status_of(cluster, *CLIENT_CERT) == "200")


def test_port_forward_reaches_the_app_inside_its_pod(cluster: E2ECluster) -> None:
    binary = cluster.runner.env["PATH"].split(":")[0] + "/meshlet"
    forward = subprocess.Popen(
        [binary, "-n", "test", "port-forward", "deployment/httpbin", ":80"],
        env=cluster.runner.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert forward.stdout is not None
        first = forward.stdout.readline()
        assert first.startswith("Forwarding from 127.0.0.1:") and first.endswith(" -> 80\n"), first
        port = int(first.split(":")[1].split()[0])
        done = subprocess.run(
            ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
             f"http://127.0.0.1:{port}/status/418"],
            capture_output=True, text=True, timeout=20, check=False,
        )  # fmt: skip
        assert done.stdout == "418", done
    finally:
        forward.send_signal(signal.SIGINT)
        try:
            forward.wait(timeout=10)
        except subprocess.TimeoutExpired:
            forward.kill()
            forward.wait()
    assert forward.returncode == 0


def test_plaintext_straight_to_the_pod_ip_on_a_strict_port_is_reset(cluster: E2ECluster) -> None:
    """Not through the Service: to httpbin's own address, on the mesh-only port 9081."""
    name = cluster.pod("test", "app=httpbin")
    (pod,) = ClusterClient(cluster.home).get("/Pod", namespace="test", names=[name])
    done = external(cluster, "curl", "-sS", f"http://{pod['status']['podIP']}:9081/status/200")
    assert done.returncode == 56, done
    assert done.stderr.splitlines() == [
        "curl: (56) Recv failure: Connection reset by peer",
        "command terminated with exit code 56",
    ]


def test_cluster_dns_gives_the_cluster_ip_that_get_svc_shows(cluster: E2ECluster) -> None:
    shown = cluster.meshlet(
        "-n", "test", "get", "svc", "httpbin", "-o", "jsonpath={.spec.clusterIP}"
    )
    assert shown.returncode == 0, shown
    done = external(cluster, "getent", "hosts", "httpbin.test.svc.cluster.local")
    assert done.returncode == 0, done
    assert done.stdout.split()[:2] == [shown.stdout.strip(), "httpbin.test.svc.cluster.local"]


def test_proxy_status_lists_both_sidecars_synced(cluster: E2ECluster) -> None:
    done = cluster.meshlet("proxy-status")
    assert done.returncode == 0, done
    rows = {line.split()[0]: line for line in done.stdout.splitlines()[1:] if line}
    for pod in (cluster.pod("test", "app=httpbin"), cluster.pod("test", "app=sleep")):
        assert rows[f"{pod}.test"].count("SYNCED") == 4, done.stdout  # CDS, LDS, EDS, RDS
