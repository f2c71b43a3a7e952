"""``python -m meshlet.proxy.sidecar`` as the local cluster runs it: against a real
``AdsServer`` and ``CAServer``, with a pod token, on loopback.

The sidecar binds what pilot builds for the scenario's httpbin pod (``virtualInbound``
0.0.0.0:15006, ``virtualOutbound`` 0.0.0.0:15001) and its ports 15000/15021/15090, so
the whole run happens in a network namespace of its own (``unshare --net``), which
disappears with it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None,
        reason="needs root, unshare and ip (a private network namespace)",
    ),
]

REPO = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import asyncio, json, os, secrets, signal, sys
    from datetime import UTC, datetime, timedelta
    from pathlib import Path

    from meshlet.ca.server import CAServer
    from meshlet.ca.signing import make_self_signed_root
    from meshlet.ca.tokens import issue_token
    from meshlet.xds.server import AdsServer
    from tests.pilot.scenario import HTTPBIN_IP, HTTPBIN_POD, scenario_snapshot

    POD = Path(sys.argv[1])

    async def http(port, path):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.1\\r\\nhost: x\\r\\n\\r\\n".encode())
        data = await reader.read()
        writer.close()
        head, _, body = data.partition(b"\\r\\n\\r\\n")
        return int(head.split(b" ")[1]), body

    async def main():
        signer = make_self_signed_root("cluster.local", now=datetime.now(UTC))
        key = secrets.token_bytes(32)
        (POD / "var/run/secrets/istio").mkdir(parents=True)
        (POD / "var/run/secrets/tokens").mkdir(parents=True)
        root = POD / "var/run/secrets/istio/root-cert.pem"
        root.write_bytes(signer.root_pem)
        token = POD / "var/run/secrets/tokens/istio-token"
        token.write_text(issue_token(key, namespace="test", service_account="httpbin",
                                     pod=HTTPBIN_POD,
                                     expires=datetime.now(UTC) + timedelta(hours=1)))
        ca = CAServer(signer, key)
        ca_port = await ca.start("127.0.0.1", 0)
        ads = AdsServer(scenario_snapshot())
        ads_port = await ads.start("127.0.0.1", 0)
        sidecar = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "meshlet.proxy.sidecar",
            "--pod-name", HTTPBIN_POD, "--namespace", "test",
            "--service-account", "httpbin", "--pod-ip", HTTPBIN_IP,
            "--xds-address", f"127.0.0.1:{ads_port}",
            "--ca-address", f"127.0.0.1:{ca_port}",
            "--root-cert", str(root), "--token", str(token),
            "--root-dir", str(POD), "--concurrency", "2", "--drain-seconds", "1",
            stdout=open(POD / "sidecar.log", "wb"), stderr=asyncio.subprocess.STDOUT)
        result = {}
        try:
            async with asyncio.timeout(40):
                while True:
                    try:
                        ready, reason = await http(15021, "/healthz/ready")
                        status, body = await http(
                            15000, "/config_dump?mask=dynamic_active_secrets")
                    except OSError:
                        await asyncio.sleep(0.1)
                        continue
                    secrets_dump = json.loads(body)["configs"][0] if status == 200 else {}
                    names = sorted(s["name"] for s in
                                   secrets_dump.get("dynamic_active_secrets", []))
                    if {"default", "ROOTCA"} <= set(names) and b"listener" in reason:
                        break
                    await asyncio.sleep(0.2)
            result["secrets"] = names
            result["ready"] = [ready, reason.decode()]
            result["listeners"] = (await http(15000, "/listeners"))[1].decode()
            result["proxy_status"] = [s.node_id for s in ads.status()]
            result["server_info"] = json.loads((await http(15000, "/server_info"))[1])
        finally:
            sidecar.send_signal(signal.SIGTERM)
            async with asyncio.timeout(20):
                result["exit"] = await sidecar.wait()
            await ads.stop()
            await ca.stop()
        print(json.dumps(result))

    asyncio.run(main())
    """
)


def test_sidecar_process_gets_its_identity_and_config_from_the_control_plane(
    tmp_path: Path,
) -> None:
    pod = tmp_path / "pod"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    completed = subprocess.run(
        [
            "unshare",
            "--net",
            "--",
            "sh",
            "-c",
            'ip link set lo up && exec "$0" -c "$1" "$2"',
            sys.executable,
            CHILD,
            str(pod),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    log = (pod / "sidecar.log").read_text() if (pod / "sidecar.log").exists() else ""
    assert completed.returncode == 0, completed.stderr + log
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    node = "sidecar~10.244.0.7~httpbin-5bbdbd6588-z9vbs.test~test.svc.cluster.local"
    assert {"default", "ROOTCA"} <= set(result["secrets"])
    assert "virtualInbound::0.0.0.0:15006" in result["listeners"]
    assert "virtualOutbound::0.0.0.0:15001" in result["listeners"]
    assert node in result["proxy_status"]
    assert result["server_info"]["node"]["id"] == node
    # the scenario's Sidecar terminates TLS with files this pod does not have
    status, reason = result["ready"]
    assert status == 503
    assert "listener virtualInbound is not ready: secret file-cert:/etc/istio/tls-certs/" in reason
    assert "No such file or directory" in reason
    assert result["exit"] == 0
    assert "Traceback" not in log
