"""The messages and method of ``istio.v1.auth.IstioCertificateService``.

Theory of operation
-------------------
``ca.proto`` beside this module is the specification. Rather than commit code
generated from it by ``grpcio-tools``, this module describes the same file as a
``FileDescriptorProto`` written in Python, adds it to protobuf's default pool at import
time and asks protobuf for the message classes; the server and the client register the
one method through gRPC's generic handlers and ``channel.unary_unary``. Why:

- generated ``_pb2`` modules carry protobuf's gencode/runtime version check, so they
  tie the project to the protobuf version that generated them, and need a generator
  that is not available when the project is built; three small messages do not need it;
- a descriptor built from plain Python works with every protobuf runtime the project
  accepts (upb, C++ or pure Python), and there is no generated file to fall out of date;
- gRPC's generic handlers need nothing but the method's path and the two
  (de)serializers.

A test reads ``ca.proto`` and checks that it and this module agree field by field, and
another speaks the wire format with hand-written bytes.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, struct_pb2

__all__ = [
    "METHOD_PATH",
    "PROTO_FILE",
    "SERVICE_NAME",
    "IstioCertificateRequest",
    "IstioCertificateResponse",
]

PROTO_FILE = "meshlet/ca/ca.proto"
PACKAGE = "istio.v1.auth"
SERVICE_NAME = f"{PACKAGE}.IstioCertificateService"
METHOD_NAME = "CreateCertificate"
METHOD_PATH = f"/{SERVICE_NAME}/{METHOD_NAME}"

_F = descriptor_pb2.FieldDescriptorProto


def _file() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(
        name=PROTO_FILE,
        package=PACKAGE,
        syntax="proto3",
        dependency=[struct_pb2.DESCRIPTOR.name],
    )
    request = proto.message_type.add(name="IstioCertificateRequest")
    request.field.add(
        name="csr", json_name="csr", number=1, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL
    )
    request.field.add(
        name="validity_duration",
        json_name="validityDuration",
        number=3,
        type=_F.TYPE_INT64,
        label=_F.LABEL_OPTIONAL,
    )
    request.field.add(
        name="metadata",
        json_name="metadata",
        number=4,
        type=_F.TYPE_MESSAGE,
        type_name=".google.protobuf.Struct",
        label=_F.LABEL_OPTIONAL,
    )
    response = proto.message_type.add(name="IstioCertificateResponse")
    response.field.add(
        name="cert_chain",
        json_name="certChain",
        number=1,
        type=_F.TYPE_STRING,
        label=_F.LABEL_REPEATED,
    )
    service = proto.service.add(name="IstioCertificateService")
    service.method.add(
        name=METHOD_NAME,
        input_type=f".{PACKAGE}.IstioCertificateRequest",
        output_type=f".{PACKAGE}.IstioCertificateResponse",
    )
    return proto


def _register() -> Any:
    pool = descriptor_pool.Default()
    try:
        return pool.FindFileByName(PROTO_FILE)
    except KeyError:
        return pool.AddSerializedFile(_file().SerializeToString())


FILE_DESCRIPTOR = _register()

IstioCertificateRequest: Any = message_factory.GetMessageClass(
    FILE_DESCRIPTOR.message_types_by_name["IstioCertificateRequest"]
)
IstioCertificateResponse: Any = message_factory.GetMessageClass(
    FILE_DESCRIPTOR.message_types_by_name["IstioCertificateResponse"]
)
