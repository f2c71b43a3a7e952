"""The agent's call to the mesh CA: send a CSR, get the chain back (async shell).

The channel is TLS, verified against the mesh root and the control plane's name
(``istiod.istio-system.svc``). A first request proves the pod's identity with its token
(``authorization: Bearer …``); a renewal may present the pod's current certificate and
key as the TLS client certificate instead. The private key stays in this process: it
is only handed to the local TLS stack. Every failure becomes ``CARequestError`` with
the gRPC status name.
"""

from __future__ import annotations

import grpc

from meshlet.ca.protocol import METHOD_PATH, IstioCertificateRequest, IstioCertificateResponse
from meshlet.errors import CARequestError

__all__ = ["DEFAULT_SERVER_NAME", "create_certificate"]

DEFAULT_SERVER_NAME = "istiod.istio-system.svc"


async def create_certificate(
    address: str,
    root_pem: bytes,
    csr_pem: bytes,
    ttl_seconds: int,
    *,
    token: str | None = None,
    cert_chain_pem: bytes | None = None,
    key_pem: bytes | None = None,
    server_name: str = DEFAULT_SERVER_NAME,
    timeout: float = 10,
) -> list[str]:
    """Ask the CA at ``address`` (``host:port``) to sign ``csr_pem``; the chain, leaf first."""
    if (cert_chain_pem is None) != (key_pem is None):
        raise ValueError("a client certificate needs both cert_chain_pem and key_pem")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=root_pem, private_key=key_pem, certificate_chain=cert_chain_pem
    )
    options = [
        ("grpc.ssl_target_name_override", server_name),
        ("grpc.default_authority", server_name),
        ("grpc.use_local_subchannel_pool", 1),
    ]
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    request = IstioCertificateRequest(csr=csr_pem.decode("ascii"), validity_duration=ttl_seconds)
    try:
        async with grpc.aio.secure_channel(address, credentials, options=options) as channel:
            call = channel.unary_unary(
                METHOD_PATH,
                request_serializer=IstioCertificateRequest.SerializeToString,
                response_deserializer=IstioCertificateResponse.FromString,
            )
            response = await call(request, metadata=metadata, timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
        details = exc.details() or ""
        raise CARequestError(
            f"the CA at {address} refused the request: {code.name}: {details}",
            code=code.name,
            details=details,
        ) from None
    chain = list(response.cert_chain)
    if not chain:
        raise CARequestError(
            f"the CA at {address} answered with no certificate", code="INTERNAL", details=""
        )
    return chain
