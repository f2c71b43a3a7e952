from __future__ import annotations

import shutil
import socket
import ssl
import struct
import subprocess
import threading
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshlet.proxy.client_hello import (
    MAX_CLIENT_HELLO_SIZE,
    ClientHelloOutcome,
    ClientHelloParser,
    ClientHelloResult,
    MalformedClientHello,
    NotTLS,
    parse_client_hello,
)

MESH_ALPN = ["istio-peer-exchange", "istio"]


def python_client_hello(
    *,
    sni: str | None = None,
    alpn: list[str] | None = None,
    minimum: ssl.TLSVersion | None = None,
    maximum: ssl.TLSVersion | None = None,
) -> bytes:
    """The first flight of Python's TLS client, taken from a memory BIO."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(alpn)
    if minimum is not None:
        context.minimum_version = minimum
    if maximum is not None:
        context.maximum_version = maximum
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    connection = context.wrap_bio(incoming, outgoing, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        connection.do_handshake()
    return outgoing.read()


def feed_bytewise(data: bytes) -> ClientHelloOutcome | None:
    parser = ClientHelloParser()
    outcome = None
    for i in range(len(data)):
        outcome = parser.feed(data[i : i + 1])
        if outcome is not None:
            assert parser.bytes_fed == i + 1
            break
    return outcome


def records(payload: bytes, sizes: Callable[[int], int], version: int = 0x0301) -> bytes:
    """Cut a handshake payload into TLS records whose sizes ``sizes(i)`` gives."""
    out = bytearray()
    pos, i = 0, 0
    while pos < len(payload):
        chunk = payload[pos : pos + max(1, sizes(i))]
        out += struct.pack("!BHH", 22, version, len(chunk)) + chunk
        pos += len(chunk)
        i += 1
    return bytes(out)


def handshake_of(record_bytes: bytes) -> bytes:
    """The handshake payload inside a run of records."""
    out = bytearray()
    pos = 0
    while pos < len(record_bytes):
        (length,) = struct.unpack("!H", record_bytes[pos + 3 : pos + 5])
        out += record_bytes[pos + 5 : pos + 5 + length]
        pos += 5 + length
    return bytes(out)


def vec(size: int, data: bytes) -> bytes:
    return len(data).to_bytes(size, "big") + data


def extension(kind: int, data: bytes) -> bytes:
    return struct.pack("!H", kind) + vec(2, data)


def sni_ext(*names: bytes, name_type: int = 0) -> bytes:
    return extension(0, vec(2, b"".join(bytes([name_type]) + vec(2, n) for n in names)))


def alpn_ext(*names: bytes) -> bytes:
    return extension(16, vec(2, b"".join(vec(1, n) for n in names)))


def hello(*extensions: bytes, suites: bytes = b"\x13\x01", with_extensions: bool = True) -> bytes:
    """A ClientHello handshake message built by hand (header included)."""
    body = b"\x03\x03" + bytes(32) + vec(1, b"") + vec(2, suites) + vec(1, b"\x00")
    if with_extensions:
        body += vec(2, b"".join(extensions))
    return b"\x01" + len(body).to_bytes(3, "big") + body


def one_record(handshake: bytes) -> bytes:
    return struct.pack("!BHH", 22, 0x0301, len(handshake)) + handshake


@pytest.fixture(scope="module")
def hellos() -> dict[str, bytes]:
    return {
        "sni+h2": python_client_hello(
            sni="httpbin.test.svc.cluster.local", alpn=["h2", "http/1.1"]
        ),
        "mesh": python_client_hello(
            sni="outbound_.8000_._.httpbin.test.svc.cluster.local", alpn=MESH_ALPN
        ),
        "tls12": python_client_hello(sni="example.com", maximum=ssl.TLSVersion.TLSv1_2),
        "tls13": python_client_hello(sni="example.com", minimum=ssl.TLSVersion.TLSv1_3),
        "bare": python_client_hello(),
    }


# --- real ClientHellos, fed byte by byte -------------------------------------------------


def test_sni_and_alpn_h2(hellos: dict[str, bytes]) -> None:
    result = feed_bytewise(hellos["sni+h2"])
    assert isinstance(result, ClientHelloResult)
    assert result.transport_protocol == "tls"
    assert result.server_name == "httpbin.test.svc.cluster.local"
    assert result.alpn == ("h2", "http/1.1")
    assert "TLSv1.3" in result.version_names and "TLSv1.2" in result.version_names
    assert result == parse_client_hello(hellos["sni+h2"])
    assert result.size == len(hellos["sni+h2"]) - 5


def test_istio_mesh_alpn(hellos: dict[str, bytes]) -> None:
    result = feed_bytewise(hellos["mesh"])
    assert isinstance(result, ClientHelloResult)
    assert result.alpn == ("istio-peer-exchange", "istio")
    assert result.server_name == "outbound_.8000_._.httpbin.test.svc.cluster.local"


def test_tls12_only(hellos: dict[str, bytes]) -> None:
    result = feed_bytewise(hellos["tls12"])
    assert isinstance(result, ClientHelloResult)
    assert result.supported_versions == ()
    assert result.versions == (0x0303,)
    assert result.version_names == ("TLSv1.2",)
    assert 43 not in result.extensions


def test_tls13_only(hellos: dict[str, bytes]) -> None:
    result = feed_bytewise(hellos["tls13"])
    assert isinstance(result, ClientHelloResult)
    assert result.legacy_version == 0x0303  # TLS 1.3 keeps the legacy field at 1.2
    assert result.version_names == ("TLSv1.3",)
    assert 0x1301 in result.cipher_suites
    assert not [suite for suite in result.cipher_suites if suite >> 8 == 0xC0]  # no TLS 1.2 ECDHE


def test_no_sni_no_alpn(hellos: dict[str, bytes]) -> None:
    result = feed_bytewise(hellos["bare"])
    assert isinstance(result, ClientHelloResult)
    assert (result.server_name, result.alpn) == (None, ())


@pytest.mark.parametrize("size", [1, 2, 7, 100, 16384])
def test_split_over_records(hellos: dict[str, bytes], size: int) -> None:
    payload = handshake_of(hellos["sni+h2"])
    data = records(payload, lambda _: size)
    assert feed_bytewise(data) == parse_client_hello(hellos["sni+h2"])
    assert parse_client_hello(data) == parse_client_hello(hellos["sni+h2"])


def test_need_more_bytes_until_the_last_one(hellos: dict[str, bytes]) -> None:
    data = hellos["mesh"]
    parser = ClientHelloParser()
    assert parser.feed(data[:-1]) is None
    assert parser.outcome is None
    final = parser.feed(data[-1:])
    assert isinstance(final, ClientHelloResult)
    assert parser.feed(b"anything after") is final  # the outcome sticks


def test_bytes_after_the_client_hello_are_ignored(hellos: dict[str, bytes]) -> None:
    data = hellos["sni+h2"] + b"\x17\x03\x03\x00\x05early"
    assert parse_client_hello(data) == parse_client_hello(hellos["sni+h2"])


# --- not TLS ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "first",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"\x80\x2e\x01\x00\x02",  # SSLv2-style hello
        b"\x16\x02\x00\x00\x10",  # handshake type byte, but no TLS version
        b"\x15\x03\x03\x00\x02\x02\x28",  # an alert first
        b"SSH-2.0-OpenSSH_9.2\r\n",
    ],
)
def test_not_tls(first: bytes) -> None:
    outcome = feed_bytewise(first)
    assert isinstance(outcome, NotTLS)
    assert outcome.transport_protocol == "raw_buffer"


def test_not_tls_is_known_from_the_first_byte() -> None:
    assert ClientHelloParser().feed(b"G") == NotTLS("first byte 0x47 is not a TLS handshake record")


# --- malformed --------------------------------------------------------------------------


def test_hand_built_hello_parses() -> None:
    data = one_record(hello(sni_ext(b"a.example"), alpn_ext(b"h2")))
    result = feed_bytewise(data)
    assert isinstance(result, ClientHelloResult)
    assert (result.server_name, result.alpn, result.extensions) == ("a.example", ("h2",), (0, 16))


def test_hello_without_extensions_parses() -> None:
    result = parse_client_hello(one_record(hello(with_extensions=False)))
    assert isinstance(result, ClientHelloResult)
    assert result.extensions == ()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x16\x03\x01\x00\x00", "empty handshake record"),
        (b"\x16\x03\x01\x40\x01", "record length 16385"),
        (one_record(b"\x02\x00\x00\x00"), "not ClientHello"),
        (one_record(hello(sni_ext(b"a", b"b"))), "more than one name"),
        (one_record(hello(sni_ext(b"a", name_type=1))), "not host_name"),
        (one_record(hello(sni_ext(b""))), "1 to 255"),
        (one_record(hello(sni_ext(b"x" * 256))), "1 to 255"),
        (one_record(hello(sni_ext(b"a\x00b"))), "NUL"),
        (one_record(hello(sni_ext(b"\xc3\xa9.example"))), "not ASCII"),
        (one_record(hello(alpn_ext(b"h2", b""))), "empty protocol name"),
        (one_record(hello(extension(16, vec(2, b"")))), "protocol_name_list is empty"),
        (one_record(hello(extension(43, vec(1, b"\x03")))), "supported_versions"),
        (one_record(hello(alpn_ext(b"h2"), alpn_ext(b"h2"))), "appears twice"),
        (one_record(hello(suites=b"")), "cipher_suites"),
        (one_record(hello(suites=b"\x13")), "cipher_suites"),
        (one_record(hello(extension(0, b"\x00\x05ab"))), "runs past the end"),
        (one_record(hello()[:-2] + b"\x00\x05"), "runs past"),
        (one_record(hello() + b"\x00"), None),  # handled below: trailing bytes
    ],
)
def test_malformed(data: bytes, reason: str | None) -> None:
    if reason is None:
        # Bytes after a whole handshake message are outside the ClientHello: still fine.
        assert isinstance(parse_client_hello(data), ClientHelloResult)
        return
    outcome = feed_bytewise(data)
    assert isinstance(outcome, MalformedClientHello), outcome
    assert reason in outcome.reason
    assert outcome.transport_protocol == "raw_buffer"
    assert not outcome.oversized


@pytest.mark.parametrize(
    "data",
    [
        one_record(hello(sni_ext(b"a.example"), alpn_ext(b"h2"))),
        one_record(hello(sni_ext(b"a", b"b"))),
        one_record(hello(extension(0, b"\x00\x05ab"))),
        one_record(hello()[:-2] + b"\x00\x05"),
        one_record(hello(alpn_ext(b"h2"), alpn_ext(b"h2"))),
        one_record(hello(suites=b"\x13")),
        one_record(b"\x02\x00\x00\x00"),
        b"\x16\x03\x01\x00\x00",
    ],
)
def test_one_whole_record_parses_as_bytes_fed_one_at_a_time(data: bytes) -> None:
    """A ClientHello that came in one piece is decoded straight from it: same outcome."""
    parser = ClientHelloParser()
    assert parser.feed(data) == feed_bytewise(data)
    assert parser.bytes_fed == len(data)


def test_one_whole_record_over_a_small_cap_is_still_oversized() -> None:
    data = one_record(hello(sni_ext(b"a.example")))
    outcome = parse_client_hello(data, max_size=len(data) - 1)
    assert isinstance(outcome, MalformedClientHello)
    assert outcome.oversized


def test_bytes_after_the_extensions_inside_the_message() -> None:
    message = bytearray(hello(alpn_ext(b"h2")))
    message += b"\x00"
    message[1:4] = (len(message) - 4).to_bytes(3, "big")
    outcome = parse_client_hello(one_record(bytes(message)))
    assert isinstance(outcome, MalformedClientHello)
    assert "after the extensions" in outcome.reason


def test_other_record_type_inside_a_split_hello(hellos: dict[str, bytes]) -> None:
    payload = handshake_of(hellos["bare"])
    data = records(payload[:10], lambda _: 10) + b"\x14\x03\x03\x00\x01\x01"
    outcome = parse_client_hello(data)
    assert isinstance(outcome, MalformedClientHello)
    assert "content type 20" in outcome.reason


def test_declared_size_over_the_cap_is_refused_at_once() -> None:
    header = b"\x01" + (MAX_CLIENT_HELLO_SIZE).to_bytes(3, "big")
    outcome = feed_bytewise(one_record(header + b"\x03\x03"))
    assert isinstance(outcome, MalformedClientHello)
    assert outcome.oversized


def test_big_but_allowed_hello_parses() -> None:
    padding = extension(21, bytes(60000))  # the padding extension
    message = hello(sni_ext(b"big.example"), padding)
    data = records(message, lambda _: 16384)
    result = parse_client_hello(data)
    assert isinstance(result, ClientHelloResult)
    assert result.server_name == "big.example"


def test_record_overhead_counts_toward_the_cap() -> None:
    message = hello(extension(21, bytes(40000)))
    data = records(message, lambda _: 1)  # six bytes on the wire per byte of hello
    outcome = parse_client_hello(data)
    assert isinstance(outcome, MalformedClientHello)
    assert outcome.oversized
    assert isinstance(parse_client_hello(data, max_size=len(data)), ClientHelloResult)


# --- fuzzing ----------------------------------------------------------------------------

FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def check_outcome_is_stable(data: bytes, cuts: list[int]) -> None:
    """Whatever the input and however it is cut, one outcome, and the same one."""
    whole = parse_client_hello(data)
    parser = ClientHelloParser()
    got = None
    pos = 0
    for cut in [*sorted({c % (len(data) + 1) for c in cuts}), len(data)]:
        got = parser.feed(data[pos:cut])
        pos = cut
        if got is not None:
            break
    assert got == whole
    assert whole is None or isinstance(whole, ClientHelloResult | NotTLS | MalformedClientHello)


@FUZZ
@given(st.binary(max_size=600), st.lists(st.integers(min_value=0, max_value=600), max_size=8))
def test_fuzz_random_bytes(data: bytes, cuts: list[int]) -> None:
    check_outcome_is_stable(data, cuts)


@FUZZ
@given(
    st.binary(max_size=400),
    st.lists(st.integers(min_value=0, max_value=2000), max_size=8),
)
def test_fuzz_random_bytes_behind_a_handshake_header(body: bytes, cuts: list[int]) -> None:
    data = one_record(b"\x01" + len(body).to_bytes(3, "big") + body)
    check_outcome_is_stable(data, cuts)


@FUZZ
@given(
    st.sampled_from(["sni+h2", "mesh", "tls12", "tls13", "bare"]),
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=600), st.integers(min_value=0, max_value=255)),
        min_size=1,
        max_size=6,
    ),
    st.lists(st.integers(min_value=0, max_value=600), max_size=6),
)
def test_fuzz_mutated_real_hellos(
    hellos: dict[str, bytes], which: str, flips: list[tuple[int, int]], cuts: list[int]
) -> None:
    data = bytearray(hellos[which])
    for pos, value in flips:
        data[pos % len(data)] = value
    check_outcome_is_stable(bytes(data), cuts)


@FUZZ
@given(
    st.sampled_from(["sni+h2", "mesh", "tls12", "tls13"]),
    st.integers(min_value=0, max_value=600),
    st.integers(min_value=1, max_value=50),
)
def test_fuzz_truncated_and_rerecorded(
    hellos: dict[str, bytes], which: str, keep: int, record_size: int
) -> None:
    payload = handshake_of(hellos[which])
    rerecorded = records(payload, lambda i: record_size + i % 3)
    truncated = rerecorded[: keep % len(rerecorded)]
    assert parse_client_hello(truncated) is None  # a prefix of a valid hello needs more
    assert parse_client_hello(rerecorded) == parse_client_hello(hellos[which])


# --- a ClientHello from openssl s_client over a loopback socket -------------------------


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_openssl_s_client_hello() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)
    port = server.getsockname()[1]
    outcomes: list[ClientHelloOutcome | None] = []

    def accept_one() -> None:
        conn, _ = server.accept()
        with conn:
            conn.settimeout(10)
            parser = ClientHelloParser()
            while (outcome := parser.feed(conn.recv(7))) is None:
                pass
            outcomes.append(outcome)

    thread = threading.Thread(target=accept_one, daemon=True)
    thread.start()
    try:
        subprocess.run(
            [
                "openssl",
                "s_client",
                "-connect",
                f"127.0.0.1:{port}",
                "-servername",
                "httpbin.test.svc.cluster.local",
                "-alpn",
                "h2,http/1.1",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=20,
            check=False,
        )
        thread.join(timeout=10)
    finally:
        server.close()
    (outcome,) = outcomes
    assert isinstance(outcome, ClientHelloResult)
    assert outcome.server_name == "httpbin.test.svc.cluster.local"
    assert outcome.alpn == ("h2", "http/1.1")
    assert "TLSv1.3" in outcome.version_names
