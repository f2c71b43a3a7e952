"""``meshlet sidecar -f`` with the scenario's own Sidecar in front of the real httpbin.

Everything runs inside a network namespace of the test's own (``unshare --net``): the
Sidecar binds 0.0.0.0:9080 and 9081 exactly as the scenario writes it, so it must not
touch the host's network. The certificates are made with the scenario's openssl
commands (X.509 v1, no extensions); the paths in the Sidecar point at them, and
``defaultEndpoint: 0.0.0.0:8000`` reaches httpbin, served by gunicorn on loopback.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.manifests import SIDECAR_PATH

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        any(shutil.which(tool) is None for tool in ("curl", "openssl", "unshare", "ip")),
        reason="curl, openssl, unshare and ip are needed",
    ),
    pytest.mark.skipif(sys.platform != "linux", reason="network namespaces are Linux's"),
]

STEP_3 = """
openssl req -x509 -sha256 -nodes -days 365 -newkey rsa:2048 -subj '/O=example Inc./CN=example.com' -keyout example.com.key -out example.com.crt
openssl req -out httpbin.test.svc.cluster.local.csr -newkey rsa:2048 -nodes -keyout httpbin.test.svc.cluster.local.key -subj "/CN=httpbin.test.svc.cluster.local/O=httpbin organization"
openssl x509 -req -days 365 -CA example.com.crt -CAkey example.com.key -set_serial 1 -in httpbin.test.svc.cluster.local.csr -out httpbin.test.svc.cluster.local.crt
openssl req -out client.test.svc.cluster.local.csr -newkey rsa:2048 -nodes -keyout client.test.svc.cluster.local.key -subj "/CN=client.test.svc.cluster.local/O=client organization"
openssl x509 -req -days 365 -CA example.com.crt -CAkey example.com.key -set_serial 1 -in client.test.svc.cluster.local.csr -out client.test.svc.cluster.local.crt
"""

SCRIPT = """
set -u
ip link set lo up
"$PYTHON" -m gunicorn -k gthread --threads 4 -b 127.0.0.1:8000 httpbin:app >gunicorn.log 2>&1 &
app=$!
"$MESHLET" sidecar -f sidecar.yaml --concurrency 1 >sidecar.log 2>&1 &
sidecar=$!
trap 'kill $sidecar $app 2>/dev/null; wait $sidecar $app 2>/dev/null' EXIT
CURL="curl -sS --cacert example.com.crt --cert client.test.svc.cluster.local.crt --key client.test.svc.cluster.local.key --resolve httpbin.test.svc.cluster.local:9080:127.0.0.1"
for _ in $(seq 150); do
    $CURL -o /dev/null "https://httpbin.test.svc.cluster.local:9080/status/200" 2>/dev/null && break
    sleep 0.2
done
echo "--- status"
$CURL -I "https://httpbin.test.svc.cluster.local:9080/status/200"
echo "--- headers"
$CURL "https://httpbin.test.svc.cluster.local:9080/headers"
"""


def test_the_scenario_sidecar_serves_httpbin_over_mutual_tls(tmp_path: Path) -> None:
    subprocess.run(["sh", "-c", STEP_3], cwd=tmp_path, check=True, capture_output=True)
    sidecar = SIDECAR_PATH.read_text().replace(
        "/etc/istio/tls-certs/tls.key", str(tmp_path / "httpbin.test.svc.cluster.local.key")
    )
    sidecar = sidecar.replace(
        "/etc/istio/tls-certs/tls.crt", str(tmp_path / "httpbin.test.svc.cluster.local.crt")
    )
    sidecar = sidecar.replace("/etc/istio/tls-ca-certs/ca.crt", str(tmp_path / "example.com.crt"))
    sidecar = sidecar.replace("0.0.0.0:80\n", "0.0.0.0:8000\n")
    (tmp_path / "sidecar.yaml").write_text(sidecar)
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "PYTHON": sys.executable,
        "MESHLET": str(Path(sys.executable).parent / "meshlet"),
    }
    done = subprocess.run(
        ["unshare", "--net", "sh", "-c", SCRIPT],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    logs = (tmp_path / "sidecar.log").read_text() if (tmp_path / "sidecar.log").exists() else ""
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{logs}"
    status, headers = done.stdout.split("--- headers\n")
    head = [line.rstrip() for line in status.split("--- status\n")[1].splitlines()]
    assert head[0] == "HTTP/2 200"
    fields = dict(line.split(": ", 1) for line in head[1:] if ": " in line)
    assert fields["server"] == "istio-envoy"
    assert fields["x-envoy-decorator-operation"] == "ingress-sidecar.test:9080/*"
    assert int(fields["x-envoy-upstream-service-time"]) >= 0
    assert fields["content-type"] == "text/html; charset=utf-8"
    # httpbin's /headers shows the x-forwarded-client-cert it received, in Envoy's form:
    # the subject in RFC 2253 order (last RDN first), as Envoy prints it
    xfcc = next(line for line in headers.splitlines() if "X-Forwarded-Client-Cert" in line)
    assert 'Subject=\\"O=client organization,CN=client.test.svc.cluster.local\\"' in xfcc
    assert "Hash=" in xfcc
