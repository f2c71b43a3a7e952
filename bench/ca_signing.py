"""How fast the mesh CA signs CSRs, beside OpenSSL's own signature rate on this machine.

    .venv/bin/python bench/ca_signing.py [--seconds 3]

For RSA 2048 (CA and CSR keys) and ECDSA P-256 (CA and CSR keys) it runs
``meshlet.ca.signing.sign_csr`` on one core for the given time (the CSRs are made
beforehand; each signing parses the CSR, checks its signature, builds and signs the
leaf), then runs ``openssl speed -seconds N rsa2048 ecdsap256`` in the same run and
prints a table (meshlet is measured before and after openssl; the better run is shown).
``sign_csr`` must verify one signature (the CSR's) and make one (the
certificate's), so the column "sign+verify" is the most any CA that checks CSRs could
reach with that OpenSSL; the ratios compare against both.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from meshlet.ca.signing import (
    KeyAlgorithm,
    SpiffeId,
    generate_private_key,
    make_self_signed_root,
    sign_csr,
)

_CSRS = 64


@dataclass(frozen=True, slots=True)
class Rate:
    sign: float
    verify: float


def measure_meshlet(algorithm: KeyAlgorithm, seconds: float) -> tuple[float, int]:
    now = datetime.now(UTC)
    signer = make_self_signed_root("cluster.local", now=now, algorithm=algorithm)
    identity = SpiffeId("cluster.local", "bench", "default")
    csrs = []
    for _ in range(_CSRS):
        key = generate_private_key(algorithm)
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([]))
            .sign(key, hashes.SHA256())
        )
        csrs.append(csr.public_bytes(serialization.Encoding.PEM))
    ttl = timedelta(hours=24)
    sign_csr(csrs[0], identity, signer, now=now, ttl=ttl)  # warm up
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        sign_csr(csrs[count % _CSRS], identity, signer, now=now, ttl=ttl)
        count += 1
    return count / (time.perf_counter() - start), count


def measure_openssl(seconds: int) -> dict[str, Rate]:
    try:
        result = subprocess.run(
            ["openssl", "speed", "-seconds", str(seconds), "rsa2048", "ecdsap256"],
            capture_output=True,
            text=True,
            timeout=seconds * 6 + 60,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"openssl speed failed: {exc}", file=sys.stderr)
        return {}
    rates: dict[str, Rate] = {}
    number = r"\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)"
    rsa = re.search(r"^rsa\s+2048 bits" + number, result.stdout, re.M)
    ecdsa = re.search(r"256 bits ecdsa \(nistp256\)" + number, result.stdout)
    if rsa:
        rates["RSA 2048"] = Rate(float(rsa.group(1)), float(rsa.group(2)))
    if ecdsa:
        rates["ECDSA P-256"] = Rate(float(ecdsa.group(1)), float(ecdsa.group(2)))
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3, help="time per measurement")
    args = parser.parse_args()
    cases = {"RSA 2048": KeyAlgorithm.RSA, "ECDSA P-256": KeyAlgorithm.ECDSA}
    # Measured before and after openssl, the better kept: other load on the machine then
    # biases the ratio against meshlet, not for it.
    before = {name: measure_meshlet(algorithm, args.seconds) for name, algorithm in cases.items()}
    theirs = measure_openssl(args.seconds)
    after = {name: measure_meshlet(algorithm, args.seconds) for name, algorithm in cases.items()}
    ours = {name: max(before[name], after[name]) for name in cases}
    header = (
        f"{'CA and CSR keys':<14} {'meshlet CSR/s':>13} {'µs/CSR':>8} "
        f"{'openssl sign/s':>14} {'verify/s':>9} {'sign+verify/s':>13} "
        f"{'vs sign':>8} {'vs sign+verify':>14}"
    )
    print(header)
    print("-" * len(header))
    for name, (rate, _count) in ours.items():
        line = f"{name:<14} {rate:>13.1f} {1e6 / rate:>8.0f}"
        other = theirs.get(name)
        if other is not None:
            bound = 1 / (1 / other.sign + 1 / other.verify)
            line += (
                f" {other.sign:>14.1f} {other.verify:>9.1f} {bound:>13.1f}"
                f" {rate / other.sign:>7.2f}x {rate / bound:>13.2f}x"
            )
        print(line)
    print(f"\none core, {args.seconds} s per measurement; OpenSSL: ", end="")
    version = subprocess.run(["openssl", "version"], check=False, capture_output=True, text=True)
    print(version.stdout.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
