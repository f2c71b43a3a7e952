"""Summarise one sslyze JSON result: protocols and ciphers accepted, vulnerabilities.

``python tls_scan_summary.py NAME RESULT.json`` prints a short Markdown section.
"""

from __future__ import annotations

import json
import sys

PROTOCOLS = (
    ("ssl_2_0_cipher_suites", "SSL 2.0"),
    ("ssl_3_0_cipher_suites", "SSL 3.0"),
    ("tls_1_0_cipher_suites", "TLS 1.0"),
    ("tls_1_1_cipher_suites", "TLS 1.1"),
    ("tls_1_2_cipher_suites", "TLS 1.2"),
    ("tls_1_3_cipher_suites", "TLS 1.3"),
)
WEAK = ("RC4", "3DES", "DES_CBC", "NULL", "EXPORT", "anon", "MD5", "CBC")


def _result(commands: dict, name: str) -> dict | None:
    attempt = commands.get(name) or {}
    return attempt.get("result") if attempt.get("status") == "COMPLETED" else None


def main() -> int:
    name, path = sys.argv[1], sys.argv[2]
    with open(path) as handle:
        data = json.load(handle)
    print(f"### {name}\n")
    servers = data.get("server_scan_results") or []
    if not servers or servers[0].get("scan_status") != "COMPLETED":
        problem = servers[0].get("connectivity_error_trace") if servers else "no result"
        print(f"scan failed: {problem}\n")
        return 0
    commands = servers[0]["scan_result"]
    accepted = []
    weak = []
    for key, label in PROTOCOLS:
        result = _result(commands, key)
        if result is None:
            continue
        suites = [s["cipher_suite"]["name"] for s in result.get("accepted_cipher_suites", [])]
        if suites:
            accepted.append(f"- {label}: {', '.join(suites)}")
            weak += [s for s in suites if any(w in s for w in WEAK)]
    print("Protocols and cipher suites accepted:\n")
    print("\n".join(accepted) or "- none")
    checks = []
    heartbleed = _result(commands, "heartbleed")
    if heartbleed is not None:
        checks.append(("Heartbleed", heartbleed.get("is_vulnerable_to_heartbleed")))
    ccs = _result(commands, "openssl_ccs_injection")
    if ccs is not None:
        checks.append(("OpenSSL CCS injection", ccs.get("is_vulnerable_to_ccs_injection")))
    robot = _result(commands, "robot")
    if robot is not None:
        verdict = str(robot.get("robot_result"))
        checks.append((f"ROBOT ({verdict})", verdict.startswith("VULNERABLE")))
    compression = _result(commands, "tls_compression")
    if compression is not None:
        checks.append(("TLS compression (CRIME)", compression.get("supports_compression")))
    fallback = _result(commands, "tls_fallback_scsv")
    if fallback is not None:
        checks.append(("no TLS_FALLBACK_SCSV", not fallback.get("supports_fallback_scsv")))
    renegotiation = _result(commands, "session_renegotiation")
    if renegotiation is not None:
        checks.append(
            ("client-initiated renegotiation (DoS)",
             renegotiation.get("is_vulnerable_to_client_renegotiation_dos")),
        )  # fmt: skip
        checks.append(
            ("no secure renegotiation", not renegotiation.get("supports_secure_renegotiation"))
        )
    print("\nVulnerability checks (True means affected):\n")
    for label, value in checks:
        print(f"- {label}: {value}")
    weak_protocols = [
        line for line in accepted if "SSL" in line or "TLS 1.0" in line or "TLS 1.1" in line
    ]
    print(
        f"\nWeak protocols accepted: {len(weak_protocols)}; CBC/weak cipher suites accepted: "
        f"{len(weak)}{' (' + ', '.join(weak) + ')' if weak else ''}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
