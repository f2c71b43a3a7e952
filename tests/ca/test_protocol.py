"""``ca.proto`` (the specification) and the descriptor built in Python say the same."""

from __future__ import annotations

import re
from pathlib import Path

from google.protobuf import descriptor

import meshlet.ca
from meshlet.ca import protocol

PROTO = Path(meshlet.ca.__file__).parent / "ca.proto"

_TYPES = {
    "string": descriptor.FieldDescriptor.TYPE_STRING,
    "int64": descriptor.FieldDescriptor.TYPE_INT64,
    "google.protobuf.Struct": descriptor.FieldDescriptor.TYPE_MESSAGE,
}


def parse_proto(
    text: str,
) -> tuple[str, dict[str, list[tuple[bool, str, str, int]]], list[tuple[str, str, str, str]]]:
    text = re.sub(r"//[^\n]*", "", text)
    package = re.search(r"^package\s+([\w.]+);", text, re.M)
    assert package
    messages = {
        name: [
            (bool(repeated), kind, field, int(number))
            for repeated, kind, field, number in re.findall(
                r"(repeated\s+)?([\w.]+)\s+(\w+)\s*=\s*(\d+);", body
            )
        ]
        for name, body in re.findall(r"message\s+(\w+)\s*\{(.*?)\}", text, re.S)
    }
    services = [
        (service, method, request, response)
        for service, body in re.findall(r"service\s+(\w+)\s*\{(.*)\}", text, re.S)
        for method, request, response in re.findall(
            r"rpc\s+(\w+)\s*\(\s*(\w+)\s*\)\s*returns\s*\(\s*(\w+)\s*\)", body
        )
    ]
    return package.group(1), messages, services


def test_proto_file_and_descriptor_agree() -> None:
    package, messages, services = parse_proto(PROTO.read_text())
    file = protocol.FILE_DESCRIPTOR
    assert package == file.package == "istio.v1.auth"
    assert set(messages) == set(file.message_types_by_name)
    for name, fields in messages.items():
        described = file.message_types_by_name[name]
        assert len(described.fields) == len(fields)
        for repeated, kind, field_name, number in fields:
            field = described.fields_by_name[field_name]
            assert field.number == number
            assert field.type == _TYPES[kind]
            if field.type == descriptor.FieldDescriptor.TYPE_MESSAGE:
                assert field.message_type.full_name == kind
            assert field.is_repeated == repeated
    assert services == [
        (
            "IstioCertificateService",
            "CreateCertificate",
            "IstioCertificateRequest",
            "IstioCertificateResponse",
        )
    ]
    method = file.services_by_name["IstioCertificateService"].methods_by_name["CreateCertificate"]
    assert method.input_type.name == "IstioCertificateRequest"
    assert method.output_type.name == "IstioCertificateResponse"
    assert protocol.METHOD_PATH == "/istio.v1.auth.IstioCertificateService/CreateCertificate"


def test_wire_bytes_of_the_messages() -> None:
    request = protocol.IstioCertificateRequest(csr="PEM", validity_duration=300)
    request.metadata.update({"ClusterID": "Kubernetes"})
    assert request.SerializeToString() == (
        b"\x0a\x03PEM"  # field 1, length-delimited
        b"\x18\xac\x02"  # field 3, varint 300
        b"\x22\x1b\x0a\x19\x0a\x09ClusterID\x12\x0c\x1a\x0aKubernetes"  # field 4, Struct
    )
    response = protocol.IstioCertificateResponse.FromString(b"\x0a\x01a\x0a\x02bc")
    assert list(response.cert_chain) == ["a", "bc"]
