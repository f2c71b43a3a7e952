"""More services on the CA's port: each call learns which identity its caller proved."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from meshlet.ca.server import CallerAuthenticator, CAServer
from meshlet.ca.signing import KeyAlgorithm, Signer, SpiffeId, make_self_signed_root, sign_csr
from meshlet.ca.tokens import issue_token
from meshlet.errors import AuthenticationError

from .conftest import key_pem, make_csr, make_key

pytestmark = pytest.mark.integration

TOKEN_KEY = os.urandom(32)
WHO = "/meshlet.test.Who/Ask"


def utcnow() -> datetime:
    return datetime.now(UTC)


def who_service(server: grpc.aio.Server, authenticate: CallerAuthenticator) -> None:
    """A service that answers ``identity address`` of the caller, or ``none: reason``."""

    async def ask(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        try:
            caller = await authenticate(context)
        except AuthenticationError as exc:
            return f"none: {exc.message}".encode()
        return f"{caller.identity} {caller.address}".encode()

    handler = grpc.unary_unary_rpc_method_handler(ask)
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("meshlet.test.Who", {"Ask": handler})]
    )


@pytest.fixture(scope="module")
def root() -> Signer:
    return make_self_signed_root("cluster.local", now=utcnow(), algorithm=KeyAlgorithm.ECDSA)


@pytest.fixture
async def target(root: Signer) -> AsyncIterator[str]:
    ca = CAServer(root, TOKEN_KEY, services=[who_service])
    port = await asyncio.wait_for(ca.start("127.0.0.1", 0), 10)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await asyncio.wait_for(ca.stop(grace=0), 10)


async def ask(
    target: str,
    root: Signer,
    *,
    token: str | None = None,
    certificate: tuple[bytes, bytes] | None = None,
) -> str:
    chain, key = certificate if certificate is not None else (None, None)
    credentials = grpc.ssl_channel_credentials(root.root_pem, key, chain)
    options = [
        ("grpc.ssl_target_name_override", "istiod.istio-system.svc"),
        ("grpc.use_local_subchannel_pool", 1),
    ]
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    async with grpc.aio.secure_channel(target, credentials, options=options) as channel:
        call = channel.unary_unary(WHO)
        answer: bytes = await call(b"", metadata=metadata, timeout=10)
    return answer.decode()


async def test_a_service_on_the_ca_port_learns_the_token_identity(
    target: str, root: Signer
) -> None:
    token = issue_token(
        TOKEN_KEY,
        namespace="test",
        service_account="httpbin",
        pod="httpbin-1",
        expires=utcnow() + timedelta(hours=1),
    )
    identity, address = (await ask(target, root, token=token)).split()
    assert identity == "spiffe://cluster.local/ns/test/sa/httpbin"
    assert address.startswith("127.0.0.1:") and address != target  # the client's end


async def test_a_service_on_the_ca_port_learns_the_certificate_identity(
    target: str, root: Signer
) -> None:
    key = make_key()
    chain = sign_csr(
        make_csr(key),
        SpiffeId("cluster.local", "default", "sleep"),
        root,
        now=utcnow(),
        ttl=timedelta(hours=1),
    )
    answer = await ask(target, root, certificate=("".join(chain).encode(), key_pem(key)))
    assert answer.split()[0] == "spiffe://cluster.local/ns/default/sa/sleep"


async def test_a_caller_that_proves_nothing_is_told_why_in_the_error(
    target: str, root: Signer
) -> None:
    assert await ask(target, root) == "none: no token and no client certificate"
    answer = await ask(target, root, token="not-a-token")
    assert answer.startswith("none: token: ")
