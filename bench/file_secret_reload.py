"""How long from a Kubernetes ``..data`` symlink swap to the SDS push that carries it.

Starts an agent (file secrets only) with its SDS server on a unix socket in a temporary
pod directory, opens one SDS stream for ``file-cert:<dir>/tls.crt~<dir>/tls.key`` as
Envoy would, then swaps the secret volume's ``..data`` symlink the way kubelet does,
again and again, and times each swap until the response with the new certificate is
read from the stream. The stat poll is set to an hour, so what is measured is the
directory watch.

    .venv/bin/python bench/file_secret_reload.py [--swaps 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from cryptography import x509
from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc

from meshlet.agent import Agent, AgentConfig
from meshlet.agent.keys import KeyAlgorithm, KeyOptions, make_key_and_csr
from meshlet.agent.sds import SECRET_TYPE_URL, short_unix_path
from meshlet.ca.signing import SpiffeId, make_self_signed_root, sign_csr


def swap(directory: Path, generation: int, files: dict[str, bytes]) -> None:
    """kubelet's atomic writer: new ``..<ts>`` dir, rename a symlink over ``..data``."""
    stamp = f"..2026_01_01_00_00_00.{generation:06d}"
    (directory / stamp).mkdir()
    for name, data in files.items():
        (directory / stamp / name).write_bytes(data)
    link = directory / "..data"
    old = os.readlink(link) if link.is_symlink() else None
    os.symlink(stamp, directory / "..data_tmp")
    os.rename(directory / "..data_tmp", link)
    for name in files:
        if not (directory / name).is_symlink():
            os.symlink(f"..data/{name}", directory / name)
    if old is not None:
        for child in (directory / old).iterdir():
            child.unlink()
        (directory / old).rmdir()


async def run(swaps: int) -> list[float]:
    now = datetime.now(UTC)
    signer = make_self_signed_root("cluster.local", now=now)
    pairs = []
    for index in range(swaps + 1):
        request = make_key_and_csr(
            "spiffe://cluster.local/ns/bench/sa/files", KeyOptions(algorithm=KeyAlgorithm.ECDSA)
        )
        chain = sign_csr(
            request.csr_pem,
            SpiffeId("cluster.local", "bench", f"files-{index}"),
            signer,
            now=now,
            ttl=timedelta(hours=1),
        )
        pairs.append(("".join(chain).encode(), request.key_pem))

    with tempfile.TemporaryDirectory(prefix="meshlet-bench-") as tmp:
        pod = Path(tmp)
        (pod / "root-cert.pem").write_bytes(signer.root_pem)
        volume = pod / "etc/istio/tls-certs"
        volume.mkdir(parents=True)
        swap(volume, 0, {"tls.crt": pairs[0][0], "tls.key": pairs[0][1]})
        name = f"file-cert:{volume}/tls.crt~{volume}/tls.key"
        config = AgentConfig(
            pod_name="bench-0",
            namespace="bench",
            service_account="bench",
            root_cert_path=str(pod / "root-cert.pem"),
            root_dir=str(pod),
            file_poll_interval=3600.0,
        )
        delays: list[float] = []
        async with Agent(config) as agent:
            with short_unix_path(agent.sds_socket_path) as target:
                channel = grpc.aio.insecure_channel(f"unix:{target}")
                outgoing: asyncio.Queue[object] = asyncio.Queue()

                async def requests():  # type: ignore[no-untyped-def]
                    while (request := await outgoing.get()) is not None:
                        yield request

                def send(nonce: str = "", version: str = "") -> None:
                    outgoing.put_nowait(
                        discovery_pb2.DiscoveryRequest(
                            node=base_pb2.Node(
                                id="sidecar~10.0.0.1~bench-0.bench~bench.svc.cluster.local"
                            ),
                            resource_names=[name],
                            type_url=SECRET_TYPE_URL,
                            response_nonce=nonce,
                            version_info=version,
                        )
                    )

                async def serial_pushed() -> int:
                    response = await call.read()
                    send(response.nonce, response.version_info)
                    secret = secret_pb2.Secret()
                    response.resources[0].Unpack(secret)
                    chain = secret.tls_certificate.certificate_chain.inline_bytes
                    return x509.load_pem_x509_certificates(chain)[0].serial_number

                call = sds_pb2_grpc.SecretDiscoveryServiceStub(channel).StreamSecrets(requests())
                send()
                async with asyncio.timeout(10):
                    await serial_pushed()
                for generation in range(1, swaps + 1):
                    chain, key = pairs[generation]
                    expected = x509.load_pem_x509_certificates(chain)[0].serial_number
                    await asyncio.sleep(0.05)  # let the previous swap settle
                    started = time.perf_counter()
                    swap(volume, generation, {"tls.crt": chain, "tls.key": key})
                    async with asyncio.timeout(10):
                        while await serial_pushed() != expected:
                            pass
                    delays.append(time.perf_counter() - started)
                outgoing.put_nowait(None)
                call.cancel()
                await channel.close()
    return delays


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--swaps", type=int, default=50)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    delays = asyncio.run(run(args.swaps))
    ms = sorted(d * 1000 for d in delays)
    quantiles = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
    print(f"..data swap -> SDS push, {len(ms)} swaps (directory watch; stat poll off)")
    print(f"{'min':>8} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}  (ms)")
    print(
        f"{ms[0]:8.1f} {statistics.median(ms):8.1f} {quantiles[89]:8.1f} "
        f"{quantiles[98]:8.1f} {ms[-1]:8.1f}"
    )
    verdict = "within" if ms[-1] < 1000 else "OVER"
    print(f"every push {verdict} the 1 s aim")
    return 0


if __name__ == "__main__":
    sys.exit(main())
