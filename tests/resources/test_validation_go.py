"""The Go behaviours Istio's messages are made of."""

from __future__ import annotations

import pytest

from meshlet.resources.validation._go import (
    atoi,
    go_quote,
    is_dns1123_label,
    is_valid_ip,
    split_host_port,
    validate_wildcard_domain,
)


@pytest.mark.parametrize(
    ("text", "host", "port", "error"),
    [
        ("127.0.0.1:80", "127.0.0.1", "80", None),
        ("[::1]:80", "::1", "80", None),
        (":80", "", "80", None),
        ("[::]:", "::", "", None),
        ("localhost", "", "", "address localhost: missing port in address"),
        ("::1:80", "", "", "address ::1:80: too many colons in address"),
        ("[::1:80", "", "", "address [::1:80: missing ']' in address"),
        ("[::1]", "", "", "address [::1]: missing port in address"),
        ("[::1]x:80", "", "", "address [::1]x:80: missing port in address"),
        ("[::1]:80:90", "", "", "address [::1]:80:90: too many colons in address"),
        ("a]:80", "", "", "address a]:80: unexpected ']' in address"),
        ("a[:80", "", "", "address a[:80: unexpected '[' in address"),
        ("", "", "", "missing port in address"),
    ],
)
def test_split_host_port(text: str, host: str, port: str, error: str | None) -> None:
    result = split_host_port(text)
    assert (result.host, result.port, result.error) == (host, port, error)


def test_atoi() -> None:
    assert atoi("8080").value == 8080 and atoi("8080").error is None
    assert atoi("-1").value == -1
    assert atoi("+7").value == 7
    assert atoi("").error == 'strconv.Atoi: parsing "": invalid syntax'
    assert atoi("1_0").error == 'strconv.Atoi: parsing "1_0": invalid syntax'
    assert atoi("99999999999999999999").error == (
        'strconv.Atoi: parsing "99999999999999999999": value out of range'
    )


def test_quote_ip_and_labels() -> None:
    assert go_quote('a"b\\c\n') == '"a\\"b\\\\c\\n"'
    assert is_valid_ip("10.1.2.3") and is_valid_ip("::1") and is_valid_ip("fe80::1%eth0")
    assert not is_valid_ip("10.1.2.3%eth0") and not is_valid_ip("01.2.3.4")
    assert not is_valid_ip("host") and not is_valid_ip("10.0.0.0/8")
    assert is_dns1123_label("external") and is_dns1123_label("Web-1")
    assert not is_dns1123_label("web_1") and not is_dns1123_label("a" * 64)
    assert not is_dns1123_label("web\n")
    assert validate_wildcard_domain("*.example.com") is None
    assert validate_wildcard_domain("") == "empty domain name not allowed"
    assert validate_wildcard_domain("a.1") == (
        'domain name "1" invalid (top level domain "1" cannot be all-numeric)'
    )
