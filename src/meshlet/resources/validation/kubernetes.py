"""The Kubernetes API server's validation of the core kinds, with its messages.

Theory of operation: the schema checker has already refused unknown fields and wrong
types, so this module sees well-typed bodies (any optional value may still be
``null``). It applies the rules the API server applies on create, for the kinds and
fields a user of meshlet's scenario can get wrong: object names, labels and
annotations; Service ports; Deployment selectors; containers, their ports and volume
mounts; volumes; Secret and ConfigMap keys and base64 data. Each message is the API
server's ``field.Error`` text (``spec.ports[1].name: Duplicate value: "http"``),
and each ``Finding`` carries the path of the value in the document so that its
line can be shown. The API server's defaults are applied where it applies them
before validating (a port's protocol is ``TCP``; a pod's restart policy is
``Always``; ``stringData`` is merged into ``data``).

Names follow Kubernetes v1.36 with its default feature gates: Service names are
DNS-1123 labels (``RelaxedServiceNameValidation``) and environment variable names
are any printable ASCII but ``=`` (``RelaxedEnvironmentVariableValidation``).

Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meshlet.resources.k8s import decode_base64
from meshlet.resources.objects import Resource
from meshlet.resources.validation import Finding, Level
from meshlet.resources.yamlsource import Path

__all__ = [
    "dns1123_label_errors",
    "dns1123_subdomain_errors",
    "label_key_errors",
    "label_value_errors",
    "port_name_errors",
    "selector_matches",
    "validate_kubernetes",
]

MAX_SECRET_SIZE = 1024 * 1024  # a Secret's or ConfigMap's data, in bytes
MAX_ANNOTATIONS_SIZE = 256 * 1024  # all annotation keys and values, in bytes


# --- the API server's string rules (k8s.io/apimachinery/pkg/util/validation) -----------

_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN_FMT = _LABEL_FMT + "(\\." + _LABEL_FMT + ")*"
_LABEL_RE = re.compile(f"^{_LABEL_FMT}$")
_SUBDOMAIN_RE = re.compile(f"^{_SUBDOMAIN_FMT}$")
_LABEL_KEY_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_KEY_NAME_RE = re.compile(f"^{_LABEL_KEY_NAME_FMT}$")
_LABEL_VALUE_FMT = f"({_LABEL_KEY_NAME_FMT})?"
_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_CONFIG_KEY_RE = re.compile(f"^{_CONFIG_KEY_FMT}$")
_PORT_NAME_CHARSET_RE = re.compile("^[-a-z0-9]+$")
_HAS_LETTER_RE = re.compile("[a-z]")


def _regex_error(message: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{message} (regex used for validation is '{fmt}')"
    # Kubernetes' own spacing: "(e.g. 'my-name',  or '123-abc', regex used …)"
    shown = " or ".join(f"'{example}', " for example in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{fmt}')"


def _max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def dns1123_label_errors(value: str) -> list[str]:
    """Why ``value`` is not a DNS-1123 label (empty when it is one)."""
    errors = []
    if len(value) > 63:
        errors.append(_max_len_error(63))
    if not _LABEL_RE.match(value):
        if _SUBDOMAIN_RE.match(value):
            errors.append("must not contain dots")
        else:
            errors.append(
                _regex_error(
                    "a lowercase RFC 1123 label must consist of lower case alphanumeric "
                    "characters or '-', and must start and end with an alphanumeric character",
                    _LABEL_FMT,
                    "my-name",
                    "123-abc",
                )
            )
    return errors


def dns1123_subdomain_errors(value: str) -> list[str]:
    """Why ``value`` is not a DNS-1123 subdomain (empty when it is one)."""
    errors = []
    if len(value) > 253:
        errors.append(_max_len_error(253))
    if not _SUBDOMAIN_RE.match(value):
        errors.append(
            _regex_error(
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                "characters, '-' or '.', and must start and end with an alphanumeric character",
                _SUBDOMAIN_FMT,
                "example.com",
            )
        )
    return errors


_LABEL_KEY_MESSAGE = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character"
)


def label_key_errors(value: str) -> list[str]:
    """Why ``value`` is not a label key (a "qualified name": ``[prefix/]name``)."""
    errors: list[str] = []
    prefix, slash, name = value.partition("/")
    if not slash:
        name = value
    elif "/" in name:
        return [
            "a valid label key "
            + _regex_error(_LABEL_KEY_MESSAGE, _LABEL_KEY_NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    elif not prefix:
        errors.append("prefix part must be non-empty")
    else:
        errors.extend(f"prefix part {error}" for error in dns1123_subdomain_errors(prefix))
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append(f"name part {_max_len_error(63)}")
    if not _LABEL_KEY_NAME_RE.match(name):
        errors.append(
            "name part "
            + _regex_error(_LABEL_KEY_MESSAGE, _LABEL_KEY_NAME_FMT, "MyName", "my.name", "123-abc")
        )
    return errors


def label_value_errors(value: str) -> list[str]:
    """Why ``value`` is not a label value (empty is a valid value)."""
    errors = []
    if len(value) > 63:
        errors.append(_max_len_error(63))
    if value and not _LABEL_KEY_NAME_RE.match(value):
        errors.append(
            _regex_error(
                "a valid label must be an empty string or consist of alphanumeric characters, "
                "'-', '_' or '.', and must start and end with an alphanumeric character",
                _LABEL_VALUE_FMT,
                "MyValue",
                "my_value",
                "12345",
            )
        )
    return errors


def port_name_errors(value: str) -> list[str]:
    """Why ``value`` is not an IANA_SVC_NAME (a named port)."""
    errors = []
    if len(value) > 15:
        errors.append(_max_len_error(15))
    if not _PORT_NAME_CHARSET_RE.match(value):
        errors.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _HAS_LETTER_RE.search(value):
        errors.append("must contain at least one letter (a-z)")
    if "--" in value:
        errors.append("must not contain consecutive hyphens")
    if value.startswith("-") or value.endswith("-"):
        errors.append("must not begin or end with a hyphen")
    return errors


def _port_number_errors(value: int) -> list[str]:
    return [] if 1 <= value <= 65535 else ["must be between 1 and 65535, inclusive"]


def _config_key_errors(value: str) -> list[str]:
    errors = []
    if len(value) > 253:
        errors.append(_max_len_error(253))
    if not _CONFIG_KEY_RE.match(value):
        errors.append(
            _regex_error(
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                _CONFIG_KEY_FMT,
                "key.name",
                "KEY_NAME",
                "key-name",
            )
        )
    if value == ".":
        errors.append("must not be '.'")
    elif value == "..":
        errors.append("must not be '..'")
    elif value.startswith(".."):
        errors.append("must not start with '..'")
    return errors


def _env_var_name_errors(value: str) -> list[str]:
    if any(not (32 <= ord(ch) <= 126) or ch == "=" for ch in value):
        return [
            "a valid environment variable name must consist only of printable ASCII "
            "characters other than '='"
        ]
    return []


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Whether a ``LabelSelector`` (matchLabels and matchExpressions) selects ``labels``."""
    for key, value in _obj(selector.get("matchLabels")).items():
        if labels.get(key) != _str(value):
            return False
    for raw_requirement in _items(selector.get("matchExpressions")):
        requirement = _obj(raw_requirement)
        key = _str(requirement.get("key"))
        values = {_str(v) for v in _items(requirement.get("values"))}
        match _str(requirement.get("operator")):
            case "In":
                if key not in labels or labels[key] not in values:
                    return False
            case "NotIn":
                if key in labels and labels[key] in values:
                    return False
            case "Exists":
                if key not in labels:
                    return False
            case "DoesNotExist":
                if key in labels:
                    return False
            case _:
                return False
    return True


# --- reading a checked body -------------------------------------------------------------


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# --- field paths and the API server's error forms ---------------------------------------


@dataclass(frozen=True, slots=True)
class _Field:
    """A field as the API server names it (``data[tls.crt]``) and as the document holds it."""

    text: str
    path: Path

    def child(self, *names: str) -> _Field:
        text, path = self.text, self.path
        for name in names:
            text = f"{text}.{name}" if text else name
            path = (*path, name)
        return _Field(text, path)

    def index(self, index: int) -> _Field:
        return _Field(f"{self.text}[{index}]", (*self.path, index))

    def key(self, key: str) -> _Field:
        return _Field(f"{self.text}[{key}]", (*self.path, key))


_ROOT = _Field("", ())


def _go_value(value: Any) -> str:
    """A bad value the way the API server prints it (Go's ``%q``, ``%v`` or ``%#v``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _go_quote(value)
    if isinstance(value, dict):
        inner = ", ".join(f"{_go_quote(k)}:{_go_quote(str(v))}" for k, v in sorted(value.items()))
        return f"map[string]string{{{inner}}}"
    if value is None:
        return "null"
    return str(value)


def _go_quote(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


class _Findings:
    """Collects the API server's errors: ``Required``, ``Invalid``, ``Duplicate``, …"""

    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def _add(self, where: _Field, body: str, at: Path | None = None) -> None:
        self.findings.append(
            Finding(Level.ERROR, f"{where.text}: {body}", where.path if at is None else at)
        )

    def required(self, where: _Field, detail: str = "", at: Path | None = None) -> None:
        self._add(where, f"Required value: {detail}" if detail else "Required value", at)

    def invalid(self, where: _Field, value: Any, detail: str, at: Path | None = None) -> None:
        self._add(where, f"Invalid value: {_go_value(value)}: {detail}", at)

    def invalid_each(
        self, where: _Field, value: Any, errors: Iterable[str], at: Path | None = None
    ) -> None:
        for error in errors:
            self.invalid(where, value, error, at)

    def duplicate(self, where: _Field, value: Any, at: Path | None = None) -> None:
        self._add(where, f"Duplicate value: {_go_value(value)}", at)

    def not_found(self, where: _Field, value: Any, at: Path | None = None) -> None:
        self._add(where, f"Not found: {_go_value(value)}", at)

    def unsupported(
        self, where: _Field, value: Any, supported: Sequence[str], at: Path | None = None
    ) -> None:
        listed = ", ".join(_go_quote(v) for v in supported)
        self._add(where, f"Unsupported value: {_go_value(value)}: supported values: {listed}", at)

    def forbidden(self, where: _Field, detail: str, at: Path | None = None) -> None:
        self._add(where, f"Forbidden: {detail}", at)

    def too_long(self, where: _Field, limit: int, at: Path | None = None) -> None:
        self._add(where, f"Too long: may not be more than {limit} bytes", at)


# --- metadata ---------------------------------------------------------------------------

NameRule = Callable[[str], list[str]]

# which rule each kind's metadata.name follows
_NAME_RULES: dict[tuple[str, str], NameRule] = {
    ("", "Namespace"): dns1123_label_errors,
    ("", "Service"): dns1123_label_errors,
    ("", "ServiceAccount"): dns1123_subdomain_errors,
    ("", "Pod"): dns1123_subdomain_errors,
    ("", "Secret"): dns1123_subdomain_errors,
    ("", "ConfigMap"): dns1123_subdomain_errors,
    ("apps", "Deployment"): dns1123_subdomain_errors,
}


def _validate_labels(out: _Findings, labels: Any, where: _Field) -> None:
    for key, value in _obj(labels).items():
        at = (*where.path, key)
        out.invalid_each(where, key, label_key_errors(key), at)
        out.invalid_each(where, _str(value), label_value_errors(_str(value)), at)


def _validate_annotations(out: _Findings, annotations: Any, where: _Field) -> None:
    size = 0
    for key, value in _obj(annotations).items():
        out.invalid_each(where, key, label_key_errors(key.lower()), (*where.path, key))
        size += len(key.encode()) + len(_str(value).encode())
    if size > MAX_ANNOTATIONS_SIZE:
        out.too_long(where, MAX_ANNOTATIONS_SIZE)


def _validate_metadata(
    out: _Findings, metadata: Mapping[str, Any], where: _Field, name_rule: NameRule | None
) -> None:
    name = _str(metadata.get("name"))
    if name and name_rule is not None:
        out.invalid_each(where.child("name"), name, name_rule(name))
    namespace = _str(metadata.get("namespace"))
    if namespace:
        out.invalid_each(where.child("namespace"), namespace, dns1123_label_errors(namespace))
    _validate_labels(out, metadata.get("labels"), where.child("labels"))
    _validate_annotations(out, metadata.get("annotations"), where.child("annotations"))


def _validate_label_selector(out: _Findings, selector: Mapping[str, Any], where: _Field) -> bool:
    """Report the selector's errors; ``True`` when it can be used to select."""
    before = len(out.findings)
    _validate_labels(out, selector.get("matchLabels"), where.child("matchLabels"))
    for index, raw_requirement in enumerate(_items(selector.get("matchExpressions"))):
        requirement = _obj(raw_requirement)
        at = where.child("matchExpressions").index(index)
        operator = _str(requirement.get("operator"))
        values = _items(requirement.get("values"))
        if operator in ("In", "NotIn"):
            if not values:
                out.required(
                    at.child("values"), "must be specified when `operator` is 'In' or 'NotIn'"
                )
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                out.forbidden(
                    at.child("values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                )
        else:
            out.invalid(at.child("operator"), operator, "not a valid selector operator")
        key = _str(requirement.get("key"))
        out.invalid_each(at.child("key"), key, label_key_errors(key))
        for value_index, value in enumerate(values):
            out.invalid_each(
                at.child("values").index(value_index), _str(value), label_value_errors(_str(value))
            )
    return len(out.findings) == before


# --- pods -------------------------------------------------------------------------------

_PROTOCOLS = ("SCTP", "TCP", "UDP")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_RESTART_POLICIES = ("Always", "OnFailure", "Never")
_VOLUME_SOURCES = (
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "quobyte",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
)


def _validate_file_mode(out: _Findings, value: Any, where: _Field) -> None:
    mode = _int(value)
    if mode is not None and not 0 <= mode <= 0o777:
        out.invalid(where, mode, "must be a number between 0 and 0777 (octal), both inclusive")


def _validate_volumes(out: _Findings, volumes: list[Any], where: _Field) -> set[str]:
    names: set[str] = set()
    for index, raw_volume in enumerate(volumes):
        volume = _obj(raw_volume)
        at = where.index(index)
        name = _str(volume.get("name"))
        if not name:
            out.required(at.child("name"))
        else:
            out.invalid_each(at.child("name"), name, dns1123_label_errors(name))
            if name in names:
                out.duplicate(at.child("name"), name)
            names.add(name)
        sources = [source for source in _VOLUME_SOURCES if volume.get(source) is not None]
        for extra in sources[1:]:
            out.forbidden(at.child(extra), "may not specify more than 1 volume type")
        secret = volume.get("secret")
        if secret is not None:
            secret = _obj(secret)
            if not _str(secret.get("secretName")):
                out.required(at.child("secret", "secretName"), at=at.child("secret").path)
            _validate_file_mode(out, secret.get("defaultMode"), at.child("secret", "defaultMode"))
        config_map = volume.get("configMap")
        if config_map is not None:
            config_map = _obj(config_map)
            if not _str(config_map.get("name")):
                out.required(at.child("configMap", "name"), at=at.child("configMap").path)
            _validate_file_mode(
                out, config_map.get("defaultMode"), at.child("configMap", "defaultMode")
            )
    return names


def _validate_container(
    out: _Findings,
    container: Mapping[str, Any],
    where: _Field,
    volumes: set[str],
) -> None:
    if not _str(container.get("image")):
        out.required(where.child("image"), at=where.path)
    policy = container.get("imagePullPolicy")
    if policy is not None and policy not in _PULL_POLICIES:
        out.unsupported(where.child("imagePullPolicy"), policy, _PULL_POLICIES)
    port_names: set[str] = set()
    for index, raw_port in enumerate(_items(container.get("ports"))):
        port = _obj(raw_port)
        at = where.child("ports").index(index)
        number = _int(port.get("containerPort")) or 0
        if number == 0:
            out.required(at.child("containerPort"), at=at.path)
        else:
            out.invalid_each(at.child("containerPort"), number, _port_number_errors(number))
        host_port = _int(port.get("hostPort")) or 0
        if host_port:
            out.invalid_each(at.child("hostPort"), host_port, _port_number_errors(host_port))
        name = _str(port.get("name"))
        if name:
            errors = port_name_errors(name)
            if errors:
                out.invalid_each(at.child("name"), name, errors)
            elif name in port_names:
                out.duplicate(at.child("name"), name)
            else:
                port_names.add(name)
        protocol = port.get("protocol")
        if protocol is not None and protocol not in _PROTOCOLS:
            out.unsupported(at.child("protocol"), protocol, _PROTOCOLS)
    for index, variable in enumerate(_items(container.get("env"))):
        at = where.child("env").index(index).child("name")
        name = _str(_obj(variable).get("name"))
        if not name:
            out.required(at)
        else:
            out.invalid_each(at, name, _env_var_name_errors(name))
    mount_paths: set[str] = set()
    for index, raw_mount in enumerate(_items(container.get("volumeMounts"))):
        mount = _obj(raw_mount)
        at = where.child("volumeMounts").index(index)
        name = _str(mount.get("name"))
        if not name:
            out.required(at.child("name"), at=at.path)
        if name not in volumes:
            out.not_found(at.child("name"), name)
        mount_path = _str(mount.get("mountPath"))
        if not mount_path:
            out.required(at.child("mountPath"), at=at.path)
        elif mount_path in mount_paths:
            out.invalid(at.child("mountPath"), mount_path, "must be unique")
        mount_paths.add(mount_path)


def _validate_pod_spec(out: _Findings, spec: Mapping[str, Any], where: _Field) -> None:
    volumes = _validate_volumes(out, _items(spec.get("volumes")), where.child("volumes"))
    containers = _items(spec.get("containers"))
    if not containers:
        out.required(where.child("containers"))
    names: set[str] = set()
    for field_name in ("initContainers", "containers"):
        for index, raw_container in enumerate(_items(spec.get(field_name))):
            container = _obj(raw_container)
            at = where.child(field_name).index(index)
            name = _str(container.get("name"))
            if not name:
                out.required(at.child("name"), at=at.path)
            else:
                out.invalid_each(at.child("name"), name, dns1123_label_errors(name))
                if name in names:
                    out.duplicate(at.child("name"), name)
                names.add(name)
            _validate_container(out, container, at, volumes)
    policy = spec.get("restartPolicy")
    if policy is not None and policy not in _RESTART_POLICIES:
        out.unsupported(where.child("restartPolicy"), policy, _RESTART_POLICIES)
    account = _str(spec.get("serviceAccountName"))
    if account:
        out.invalid_each(
            where.child("serviceAccountName"), account, dns1123_subdomain_errors(account)
        )


def _validate_pod(out: _Findings, resource: Resource) -> None:
    _validate_pod_spec(out, resource.spec, _ROOT.child("spec"))


# --- Deployment -------------------------------------------------------------------------


def _validate_deployment(out: _Findings, resource: Resource) -> None:
    spec = resource.spec
    where = _ROOT.child("spec")
    for field_name in ("replicas", "minReadySeconds"):
        value = _int(spec.get(field_name))
        if value is not None and value < 0:
            out.invalid(where.child(field_name), value, "must be greater than or equal to 0")
    selector = spec.get("selector")
    template = _obj(spec.get("template"))
    metadata = _obj(template.get("metadata"))
    labels = {str(k): _str(v) for k, v in _obj(metadata.get("labels")).items()}
    if isinstance(selector, dict):
        usable = _validate_label_selector(out, selector, where.child("selector"))
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            match_labels = "{}" if selector.get("matchLabels") is not None else "(nil)"
            match_expressions = "{}" if selector.get("matchExpressions") is not None else "(nil)"
            shown = _Raw(
                f"v1.LabelSelector{{MatchLabels:map[string]string{match_labels}, "
                f"MatchExpressions:[]v1.LabelSelectorRequirement{match_expressions}}}"
            )
            out.invalid(where.child("selector"), shown, "empty selector is invalid for deployment")
        elif usable and not selector_matches(selector, labels):
            where_labels = where.child("template", "metadata", "labels")
            has_labels = metadata.get("labels") is not None
            printed = _go_value(labels) if has_labels else "map[string]string(nil)"
            out.invalid(
                where_labels,
                _Raw(printed),
                "`selector` does not match template `labels`",
                where_labels.path if has_labels else where.child("template").path,
            )
    template_where = where.child("template")
    _validate_metadata(out, metadata, template_where.child("metadata"), None)
    pod_spec = _obj(template.get("spec"))
    _validate_pod_spec(out, pod_spec, template_where.child("spec"))
    policy = pod_spec.get("restartPolicy")
    if policy is not None and policy in _RESTART_POLICIES and policy != "Always":
        out.unsupported(template_where.child("spec", "restartPolicy"), policy, ("Always",))
    if pod_spec.get("activeDeadlineSeconds") is not None:
        out.invalid(
            template_where.child("spec", "activeDeadlineSeconds"),
            pod_spec["activeDeadlineSeconds"],
            "activeDeadlineSeconds in ReplicaSet is not Supported",
        )
    strategy = _obj(spec.get("strategy"))
    kind = strategy.get("type")
    if kind is not None and kind not in ("Recreate", "RollingUpdate"):
        out.unsupported(where.child("strategy", "type"), kind, ("Recreate", "RollingUpdate"))
    if kind == "Recreate" and strategy.get("rollingUpdate") is not None:
        out.forbidden(
            where.child("strategy", "rollingUpdate"),
            "may not be specified when strategy `type` is 'Recreate'",
        )


# --- Service ----------------------------------------------------------------------------

_SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")


def _service_port_repr(protocol: str, port: int) -> str:
    """The key the API server prints for two ports with the same port and protocol."""
    return (
        f'core.ServicePort{{Name:"", Protocol:"{protocol}", AppProtocol:(*string)(nil), '
        f'Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:""}}, '
        "NodePort:0}"
    )


def _validate_service(out: _Findings, resource: Resource) -> None:
    spec = resource.spec
    where = _ROOT.child("spec")
    kind = spec.get("type") or "ClusterIP"
    if kind not in _SERVICE_TYPES:
        out.unsupported(where.child("type"), kind, _SERVICE_TYPES)
    cluster_ip = _str(spec.get("clusterIP"))
    headless = cluster_ip == "None"
    if cluster_ip and not headless:
        try:
            ipaddress.ip_address(cluster_ip)
        except ValueError:
            out.invalid(
                where.child("clusterIP"),
                cluster_ip,
                "must be a valid IP address (e.g. 10.9.8.7 or 2001:db8::ffff)",
            )
    ports = _items(spec.get("ports"))
    if not ports and not headless and kind != "ExternalName":
        out.required(where.child("ports"))
    names: set[str] = set()
    seen: set[tuple[str, int]] = set()
    for index, raw_port in enumerate(ports):
        port = _obj(raw_port)
        at = where.child("ports").index(index)
        name = _str(port.get("name"))
        if len(ports) > 1 and not name:
            out.required(at.child("name"), at=at.path)
        elif name:
            out.invalid_each(at.child("name"), name, dns1123_label_errors(name))
            if name in names:
                out.duplicate(at.child("name"), name)
            names.add(name)
        number = _int(port.get("port")) or 0
        out.invalid_each(at.child("port"), number, _port_number_errors(number))
        protocol = port.get("protocol") or "TCP"
        if protocol not in _PROTOCOLS:
            out.unsupported(at.child("protocol"), protocol, _PROTOCOLS)
        target = port.get("targetPort")
        if isinstance(target, str) and target:
            out.invalid_each(at.child("targetPort"), target, port_name_errors(target))
        elif isinstance(target, int) and target != 0:
            out.invalid_each(at.child("targetPort"), target, _port_number_errors(target))
        key = (str(protocol), number)
        if key in seen:
            out.duplicate(at, _Raw(_service_port_repr(*key)))
        seen.add(key)
    if kind != "ExternalName":
        _validate_labels(out, spec.get("selector"), where.child("selector"))


@dataclass(frozen=True, slots=True)
class _Raw:
    """A value already in the API server's printed form."""

    text: str

    def __str__(self) -> str:
        return self.text


# --- Secret and ConfigMap ---------------------------------------------------------------

_SECRET_REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
}


def _decoded_sizes(out: _Findings, resource: Resource, field_name: str) -> dict[str, int]:
    """Each key of a base64 map with its decoded size; reports bad keys and bad base64."""
    sizes: dict[str, int] = {}
    where = _ROOT.child(field_name)
    for key, value in _obj(resource.body.get(field_name)).items():
        at = (field_name, key)
        out.invalid_each(where.key(key), key, _config_key_errors(key), at)
        try:
            sizes[key] = len(decode_base64(_str(value)))
        except ValueError as exc:
            out.invalid(
                where.key(key),
                "<secret contents redacted>" if resource.kind == "Secret" else "<binary data>",
                f"{exc}: the values of {field_name} must be base64-encoded"
                + ("; write plain text under stringData" if field_name == "data" else ""),
                at,
            )
            sizes[key] = 0
    return sizes


def _validate_secret(out: _Findings, resource: Resource) -> None:
    sizes = _decoded_sizes(out, resource, "data")
    where = _ROOT.child("data")
    for key, value in _obj(resource.body.get("stringData")).items():
        # stringData is merged into data before the API server validates it
        out.invalid_each(where.key(key), key, _config_key_errors(key), ("stringData", key))
        sizes[key] = len(_str(value).encode())
    written = next((name for name in ("data", "stringData") if name in resource.body), "data")
    if sum(sizes.values()) > MAX_SECRET_SIZE:
        out.too_long(where, MAX_SECRET_SIZE, at=(written,))
    kind = _str(resource.body.get("type"))
    for key in _SECRET_REQUIRED_KEYS.get(kind, ()):
        if key not in sizes:
            at = ("data",) if "data" in resource.body else ("type",)
            out.required(where.key(key), at=at)
    if kind == "kubernetes.io/basic-auth" and "username" not in sizes and "password" not in sizes:
        at = ("data",) if "data" in resource.body else ("type",)
        out.required(where.key("username"), at=at)
        out.required(where.key("password"), at=at)
    if kind == "kubernetes.io/service-account-token":
        account = _str(resource.annotations.get("kubernetes.io/service-account.name"))
        if not account:
            out.required(
                _ROOT.child("metadata", "annotations").key("kubernetes.io/service-account.name"),
                at=("metadata",),
            )


def _validate_config_map(out: _Findings, resource: Resource) -> None:
    data = _obj(resource.body.get("data"))
    binary = _obj(resource.body.get("binaryData"))
    where = _ROOT.child("data")
    size = 0
    for key, value in data.items():
        out.invalid_each(where.key(key), key, _config_key_errors(key), ("data", key))
        if key in binary:
            out.invalid(
                where.key(key), key, "duplicate of key present in binaryData", ("data", key)
            )
        size += len(_str(value).encode())
    size += sum(_decoded_sizes(out, resource, "binaryData").values())
    if size > MAX_SECRET_SIZE:
        out.too_long(where, MAX_SECRET_SIZE, at=("data",) if data else ("binaryData",))


# --- entry point ------------------------------------------------------------------------

_KIND_RULES: dict[tuple[str, str], Callable[[_Findings, Resource], None]] = {
    ("", "Service"): _validate_service,
    ("", "Pod"): _validate_pod,
    ("", "Secret"): _validate_secret,
    ("", "ConfigMap"): _validate_config_map,
    ("apps", "Deployment"): _validate_deployment,
}


def validate_kubernetes(resource: Resource) -> list[Finding]:
    """The API server's errors for a Kubernetes ``resource`` (none for other kinds)."""
    key = (resource.info.group, resource.kind)
    if key not in _NAME_RULES:
        return []
    out = _Findings()
    _validate_metadata(out, resource.metadata, _ROOT.child("metadata"), _NAME_RULES[key])
    rule = _KIND_RULES.get(key)
    if rule is not None:
        rule(out, resource)
    return out.findings
