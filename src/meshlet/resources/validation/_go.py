"""Go standard-library behaviour that Istio's messages depend on.

Istio's validation appends the error strings of Go's ``net.SplitHostPort`` and
``strconv.Atoi`` to its own messages, and decides with ``netip.ParseAddr`` and
``path.IsAbs``. These functions reproduce what those print and accept, so that
meshlet's messages match Istio's byte for byte.

Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

__all__ = [
    "AtoiResult",
    "SplitResult",
    "atoi",
    "go_quote",
    "go_string_list",
    "is_dns1123_label",
    "is_valid_ip",
    "is_wildcard_dns1123_label",
    "split_host_port",
    "validate_dns1123_labels",
    "validate_wildcard_domain",
]

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_DNS1123_LABEL = re.compile(r"^[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?$")
_WILDCARD_LABEL = re.compile(r"^(?:\*|(?:\*|\*-)?[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?)$")


@dataclass(frozen=True, slots=True)
class SplitResult:
    host: str
    port: str
    error: str | None  # Go's error string, or None


def split_host_port(hostport: str) -> SplitResult:
    """Go's ``net.SplitHostPort``: ``host:port`` or ``[host]:port``, and its errors."""

    def failed(why: str) -> SplitResult:
        return SplitResult("", "", f"address {hostport}: {why}" if hostport else why)

    last_colon = hostport.rfind(":")
    if last_colon < 0:
        return failed("missing port in address")
    skip_open, skip_close = 0, 0
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            return failed("missing ']' in address")
        if end + 1 == len(hostport):
            return failed("missing port in address")
        if end + 1 != last_colon:
            if hostport[end + 1] == ":":
                return failed("too many colons in address")
            return failed("missing port in address")
        host = hostport[1:end]
        skip_open, skip_close = 1, end + 1
    else:
        host = hostport[:last_colon]
        if ":" in host:
            return failed("too many colons in address")
    if "[" in hostport[skip_open:]:
        return failed("unexpected '[' in address")
    if "]" in hostport[skip_close:]:
        return failed("unexpected ']' in address")
    return SplitResult(host, hostport[last_colon + 1 :], None)


@dataclass(frozen=True, slots=True)
class AtoiResult:
    value: int
    error: str | None  # e.g. 'strconv.Atoi: parsing "x": invalid syntax'


def atoi(text: str) -> AtoiResult:
    """Go's ``strconv.Atoi`` on a 64-bit platform (base 10, optional sign)."""
    digits = text[1:] if text[:1] in {"+", "-"} else text
    if not digits or not all("0" <= c <= "9" for c in digits):
        return AtoiResult(0, f"strconv.Atoi: parsing {go_quote(text)}: invalid syntax")
    value = int(text)
    if value < _INT64_MIN or value > _INT64_MAX:
        clamped = _INT64_MIN if value < 0 else _INT64_MAX
        return AtoiResult(clamped, f"strconv.Atoi: parsing {go_quote(text)}: value out of range")
    return AtoiResult(value, None)


def go_quote(text: str) -> str:
    """Go's ``%q`` / ``strconv.Quote`` for a string."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in {'"', "\\"}:
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\r":
            out.append("\\r")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif char.isprintable():
            out.append(char)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def go_string_list(items: list[str]) -> str:
    """Go's ``%v`` of a ``[]string``: ``[a b c]``."""
    return "[" + " ".join(items) + "]"


def is_valid_ip(text: str) -> bool:
    """Go's ``netip.ParseAddr`` accepts ``text`` (IPv4, IPv6, IPv6 with a zone)."""
    address, sep, zone = text.partition("%")
    if sep and (not zone or ":" not in address):
        return False
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def is_dns1123_label(text: str) -> bool:
    """Istio's DNS-1123 label: alphanumerics and '-' (either case), at most 63 long."""
    return len(text) <= 63 and _DNS1123_LABEL.fullmatch(text) is not None


def is_wildcard_dns1123_label(text: str) -> bool:
    """A DNS-1123 label, ``*``, or a label with a leading ``*`` or ``*-``."""
    return len(text) <= 63 and _WILDCARD_LABEL.fullmatch(text) is not None


def validate_dns1123_labels(domain: str) -> str | None:
    """Istio's ``ValidateDNS1123Labels``: the error, or None."""
    parts = domain.split(".")
    top = parts[-1]
    if atoi(top).error is None:
        return (
            f"domain name {go_quote(domain)} invalid "
            f"(top level domain {go_quote(top)} cannot be all-numeric)"
        )
    for index, label in enumerate(parts):
        if index == len(parts) - 1 and label == "":
            return None  # a trailing dot: "istio.io."
        if not is_dns1123_label(label):
            return f"domain name {go_quote(domain)} invalid (label {go_quote(label)} invalid)"
    return None


def validate_wildcard_domain(domain: str) -> str | None:
    """Istio's ``ValidateWildcardDomain``: an FQDN whose first label may be a wildcard."""
    if len(domain) > 255:
        return f"domain name {go_quote(domain)} too long (max 255)"
    if not domain:
        return "empty domain name not allowed"
    first, dot, rest = domain.partition(".")
    if not is_wildcard_dns1123_label(first):
        return f"domain name {go_quote(domain)} invalid (label {go_quote(first)} invalid)"
    if dot:
        return validate_dns1123_labels(rest)
    return None
