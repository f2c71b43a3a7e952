"""``ClusterClient`` against a small scripted server on a unix socket."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshlet.cluster.client import NOT_RUNNING, ClusterClient
from meshlet.cluster.home import ClusterHome, node_config_from_json, node_config_to_json
from meshlet.cluster.protocol import ApiError, decode_error, encode_error, not_found
from meshlet.errors import ExitCode, MeshletError
from meshlet.runtime.config import NodeConfig


class Scripted:
    """Answers each request with the next scripted response; keeps the requests."""

    def __init__(self, path: Path, responses: list[dict[str, Any]]) -> None:
        self.responses = list(responses)
        self.requests: list[dict[str, Any]] = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while self.responses:
            connection, _ = self.server.accept()
            with connection:
                data = b""
                while not data.endswith(b"\n"):
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                self.requests.append(json.loads(data))
                connection.sendall(json.dumps(self.responses.pop(0)).encode() + b"\n")

    def close(self) -> None:
        self.server.close()
        self.thread.join(timeout=5)


@pytest.fixture
def home(tmp_path: Path) -> ClusterHome:
    return ClusterHome(tmp_path)


def scripted(home: ClusterHome, *responses: dict[str, Any]) -> Iterator[Scripted]:
    server = Scripted(home.socket, list(responses))
    try:
        yield server
    finally:
        server.close()


def test_not_running_is_unavailable_with_the_contract_message(home: ClusterHome) -> None:
    with pytest.raises(ApiError) as caught:
        ClusterClient(home).ping()
    assert str(caught.value) == NOT_RUNNING == 'meshlet is not running: run "meshlet install" first'
    assert caught.value.exit_code == ExitCode.UNAVAILABLE


def test_a_result_comes_back_and_the_request_says_what_was_asked(home: ClusterHome) -> None:
    for server in scripted(home, {"ok": True, "result": [{"metadata": {"name": "sleep"}}]}):
        found = ClusterClient(home).get("/Pod", namespace="default", selector="app=sleep")
        assert found == [{"metadata": {"name": "sleep"}}]
        assert server.requests == [
            {
                "op": "get",
                "args": {
                    "kind": "/Pod",
                    "namespace": "default",
                    "names": [],
                    "selector": "app=sleep",
                },
            }
        ]


def test_an_error_answer_raises_it_with_its_exit_code(home: ClusterHome) -> None:
    error = encode_error(not_found("pods", "x"))
    for _ in scripted(home, {"ok": False, "error": error}):
        with pytest.raises(ApiError) as caught:
            ClusterClient(home).locate("default", "x")
    assert str(caught.value) == 'Error from server (NotFound): pods "x" not found'
    assert caught.value.reason == "NotFound" and caught.value.exit_code == ExitCode.NOT_FOUND


def test_admin_bytes_travel_base64(home: ClusterHome) -> None:
    for _ in scripted(home, {"ok": True, "result": "eyJhIjoxfQ=="}):
        assert ClusterClient(home).admin("test", "p", "/config_dump") == b'{"a":1}'


def test_a_connection_closed_without_answer_is_unavailable(home: ClusterHome) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(home.socket))
    server.listen()

    def close_at_once() -> None:
        connection, _ = server.accept()
        connection.close()

    thread = threading.Thread(target=close_at_once, daemon=True)
    thread.start()
    try:
        with pytest.raises(ApiError, match="without an answer"):
            ClusterClient(home).ping()
    finally:
        thread.join(timeout=5)
        server.close()


def test_errors_round_trip_and_plain_errors_are_invalid() -> None:
    assert decode_error(encode_error(MeshletError("bad"))).reason == "Invalid"
    back = decode_error({"reason": "AlreadyExists", "message": "m", "exitCode": 1})
    assert (back.reason, back.message, back.exit_code) == ("AlreadyExists", "m", ExitCode.ERROR)


def test_home_layout_and_node_json() -> None:
    home = ClusterHome.from_environment({"MESHLET_HOME": "/srv/mesh"})
    assert home.socket == Path("/srv/mesh/meshlet.sock") and home.database == Path(
        "/srv/mesh/cluster.db"
    )
    assert ClusterHome.from_environment({}).root == Path("/var/lib/meshlet")
    config = NodeConfig(prefix="mlt1")
    assert node_config_from_json(node_config_to_json(config)) == config
