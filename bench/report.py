"""Turn bench/run.py's JSON into the Markdown table and the PNG chart of docs/benchmarks.md.

``python report.py docs/benchmarks.json --markdown docs/benchmarks.md --chart docs/benchmarks.png``
replaces what lies between the ``<!-- results -->`` and ``<!-- /results -->`` lines of
the Markdown file (the rest of the file is left alone) and draws the chart.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

START, END = "<!-- results -->", "<!-- /results -->"
SIDECARS = ("meshlet sidecar, concurrency 1", "meshlet sidecar, concurrency 2")


def _number(value: object, digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, float | int):
        return f"{value:,.{digits}f}"
    return str(value)


def _ratio(a: object, b: object) -> float | None:
    if isinstance(a, int | float) and isinstance(b, int | float) and b:
        return a / b
    return None


def table(report: dict) -> str:
    targets: dict[str, dict] = report["targets"]
    rows = [
        "| | keep-alive req/s (HTTP/1.1) | HTTP/2 req/s | CPU µs / request | CPU µs / full handshake | p50 ms | p99 ms | PSS MB (processes) | MB alone |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in targets.items():
        rows.append(
            f"| {name} | {_number(r.get('keepalive_rps'))} | {_number(r.get('h2_rps'))} "
            f"| {_number(r.get('cpu_us_per_request'), 1)} "
            f"| {_number(r.get('cpu_us_per_handshake'))} "
            f"| {_number(r.get('p50_ms'), 3)} | {_number(r.get('p99_ms'), 3)} "
            f"| {_number(r.get('pss_mb'), 1)} ({r.get('processes', '—')}) "
            f"| {_number(r.get('alone_mb'), 1)} |"
        )
    haproxy, nginx = targets.get("HAProxy", {}), targets.get("nginx", {})
    rows += [
        "",
        "| | keep-alive vs HAProxy (goal ≥ 0.6) | keep-alive vs nginx | handshakes per CPU-second vs nginx (goal ≥ 0.9) | p99 vs HAProxy (goal ≤ 2) | PSS (goal < 80 MB) | MB alone |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in SIDECARS:
        r = targets.get(name)
        if r is None:
            continue
        rows.append(
            f"| {name} "
            f"| {_number(_ratio(r.get('keepalive_rps'), haproxy.get('keepalive_rps')), 2)} "
            f"| {_number(_ratio(r.get('keepalive_rps'), nginx.get('keepalive_rps')), 2)} "
            f"| {_number(_ratio(r.get('handshakes_per_cpu_second'), nginx.get('handshakes_per_cpu_second')), 2)} "
            f"| {_number(_ratio(r.get('p99_ms'), haproxy.get('p99_ms')), 2)} "
            f"| {_number(r.get('pss_mb'), 1)} MB "
            f"| {_number(r.get('alone_mb'), 1)} MB |"
        )
    machine = report.get("machine", {})
    rows += [
        "",
        f"Run {report.get('when')} ({report.get('label') or 'no label'}): "
        f"{machine.get('cpus')} CPUs shared by the load generator, the proxy and the "
        f"upstream; {machine.get('openssl')}; {machine.get('nginx')}; "
        f"{machine.get('haproxy')}. {report.get('seconds')} s per run; latency at "
        f"{report.get('rate')} req/s over 10 connections.",
    ]
    return "\n".join(rows) + "\n"


def chart(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets: dict[str, dict] = report["targets"]
    names = list(targets)
    short = [n.replace("meshlet sidecar, concurrency ", "meshlet c=") for n in names]
    panels = [
        ("keep-alive req/s (HTTP/1.1, mTLS)", "keepalive_rps"),
        ("CPU µs per request", "cpu_us_per_request"),
        ("CPU µs per full handshake", "cpu_us_per_handshake"),
        ("p99 latency, ms (fixed rate)", "p99_ms"),
        ("memory, PSS MB", "pss_mb"),
    ]
    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4))
    colors = ["#888888", "#2a9d8f", "#e9c46a", "#e76f51", "#f4a261"]
    for axis, (title, key) in zip(axes, panels, strict=True):
        values = [targets[n].get(key) or 0 for n in names]
        axis.bar(range(len(names)), values, color=colors[: len(names)])
        axis.set_xticks(range(len(names)), short, rotation=35, ha="right", fontsize=8)
        axis.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path)
    parser.add_argument("--markdown", type=Path, required=True)
    parser.add_argument("--chart", type=Path, required=True)
    args = parser.parse_args()
    report = json.loads(args.json.read_text())
    text = (
        args.markdown.read_text() if args.markdown.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
    )
    if START not in text or END not in text:
        text += f"\n{START}\n{END}\n"
    before, rest = text.split(START, 1)
    _old, after = rest.split(END, 1)
    body = table(report) + f"\n![the benchmark]({args.chart.name})\n"
    args.markdown.write_text(f"{before}{START}\n{body}{END}{after}")
    chart(report, args.chart)
    print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
