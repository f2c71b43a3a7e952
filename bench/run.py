"""The sidecar beside nginx and HAProxy: one run, same machine, same certificates, same upstream.

Started by ``bench/run.sh`` (which installs the tools). Each proxy terminates mutual TLS
(RSA-2048 server certificate, a client certificate required) in front of the same
upstream, nginx answering ``return 200`` on loopback with keep-alive; the upstream is
also measured directly (plain HTTP, the ceiling). For each one:

- keep-alive req/s: ``wrk -t1 -c50`` (HTTP/1.1) and ``h2load -c50 -m10`` (HTTP/2);
- full handshakes: ``wrk -c8`` with ``Connection: close``, so every request is a new
  connection and a full handshake; reported as the server's CPU per handshake (wrk
  busy-polls during handshakes, so its rate says little);
- latency p50/p99 at a fixed moderate rate (``paced.py``, open loop);
- CPU µs per request (the proxy's processes only, from ``/proc``) and memory: PSS (all
  of the proxy's processes, shared pages counted once) and, stricter, what they would
  take alone on the host (``_alone_mb``).

wrk and h2load present the client certificate through ``client_cert_preload.so``.
Everything started here is stopped here, by PID; every run is bounded in time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TICKS = os.sysconf("SC_CLK_TCK")

UPSTREAM_PORT = 18080
PORTS = {
    "upstream direct": UPSTREAM_PORT,
    "nginx": 18443,
    "HAProxy": 18444,
    "meshlet sidecar, concurrency 1": 18445,
    "meshlet sidecar, concurrency 2": 18446,
}


@dataclass
class Target:
    name: str
    port: int
    process: subprocess.Popen[bytes] | None = None
    tls: bool = True
    result: dict[str, object] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/"

    def pids(self) -> list[int]:
        if self.process is None:
            return []
        return _tree(self.process.pid)


def _tree(pid: int) -> list[int]:
    found = [pid]
    for child in _children(pid):
        found.extend(_tree(child))
    return found


def _children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                out.extend(int(p) for p in handle.read().split())
    return out


def _cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / TICKS


def _pss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
    return round(total / 1024, 1)


def _alone_mb(pids: list[int]) -> float:
    """The memory the processes would take on a host to themselves: every resident page
    any of them maps, counted once (from ``/proc/PID/pagemap``; root only). PSS divides a
    page among every process on the host that maps it, so another program using the same
    files (a second sidecar in this run) lowers it; this does not."""
    frames: set[int] = set()
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/pagemap", "rb") as pagemap:
            for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
                if line.endswith("[vsyscall]"):
                    continue
                low, high = (int(part, 16) for part in line.split()[0].split("-"))
                pagemap.seek(low // 4096 * 8)
                for (entry,) in struct.iter_unpack("<Q", pagemap.read((high - low) // 4096 * 8)):
                    if entry >> 63:  # present
                        frames.add(entry & ((1 << 55) - 1))
    return round(len(frames) * 4096 / 2**20, 1)


def _run(command: list[str], *, env: dict[str, str] | None = None, timeout: float) -> str:
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(folder: Path) -> None:
    """A CA, the server's RSA-2048 certificate and a client certificate (as the
    reference scenario makes them)."""
    _openssl(
        "req", "-x509", "-sha256", "-nodes", "-days", "30", "-newkey", "rsa:2048",
        "-subj", "/O=example Inc./CN=example.com", "-keyout", "ca.key", "-out", "ca.crt",
        cwd=folder,
    )  # fmt: skip
    for name, common_name in (("server", "httpbin.test.svc.cluster.local"), ("client", "client")):
        _openssl(
            "req", "-out", f"{name}.csr", "-newkey", "rsa:2048", "-nodes",
            "-keyout", f"{name}.key", "-subj", f"/CN={common_name}/O={name} organization",
            cwd=folder,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-days", "30", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-set_serial", "1", "-in", f"{name}.csr", "-out", f"{name}.crt",
            cwd=folder,
        )  # fmt: skip
    (folder / "server.pem").write_bytes(
        (folder / "server.crt").read_bytes() + (folder / "server.key").read_bytes()
    )


def _nginx_upstream(folder: Path) -> str:
    return f"""worker_processes 1;
daemon off;
pid {folder}/upstream.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{UPSTREAM_PORT} reuseport;
        location / {{ default_type text/plain; return 200 "ok\\n"; }}
    }}
}}
"""


def _nginx_tls(folder: Path, port: int) -> str:
    return f"""worker_processes 1;
daemon off;
pid {folder}/nginx-tls.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    upstream app {{ server 127.0.0.1:{UPSTREAM_PORT}; keepalive 64; keepalive_requests 1000000; }}
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {folder}/server.crt;
        ssl_certificate_key {folder}/server.key;
        ssl_client_certificate {folder}/ca.crt;
        ssl_verify_client on;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def _haproxy(folder: Path, port: int) -> str:
    return f"""global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    http-reuse always
frontend tls
    bind 127.0.0.1:{port} ssl crt {folder}/server.pem ca-file {folder}/ca.crt verify required alpn h2,http/1.1
    default_backend app
backend app
    server app 127.0.0.1:{UPSTREAM_PORT}
"""


def _sidecar_yaml(folder: Path, port: int) -> str:
    return f"""apiVersion: networking.istio.io/v1alpha3
kind: Sidecar
metadata:
  name: ingress-sidecar
  namespace: test
spec:
  workloadSelector:
    labels:
      app: httpbin
  ingress:
  - port:
      number: {port}
      protocol: HTTPS
      name: external
    bind: 127.0.0.1
    defaultEndpoint: 0.0.0.0:{UPSTREAM_PORT}
    tls:
      mode: MUTUAL
      privateKey: {folder}/server.key
      serverCertificate: {folder}/server.crt
      caCertificates: {folder}/ca.crt
"""


def _wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def _wait_ready(status_port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(
                f"http://127.0.0.1:{status_port}/healthz/ready", timeout=1
            ) as answer,
        ):
            if answer.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the sidecar (status port {status_port}) did not become ready")


class Bench:
    def __init__(self, args: argparse.Namespace, folder: Path) -> None:
        self.args = args
        self.folder = folder
        self.started: list[subprocess.Popen[bytes]] = []
        self.logs = Path(tempfile.mkdtemp(prefix="meshlet-bench-logs-"))
        self.env = dict(os.environ)
        self.env.update(
            LD_PRELOAD=str(args.preload),
            BENCH_CLIENT_CERT=str(folder / "client.crt"),
            BENCH_CLIENT_KEY=str(folder / "client.key"),
        )

    def start(self, command: list[str], log: str) -> subprocess.Popen[bytes]:
        # Logs live apart from the certificates: the sidecar's agent watches their folder.
        out = open(self.logs / log, "wb")  # noqa: SIM115 - kept for the process's life
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.started):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
        for process in reversed(self.started):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                process.wait(timeout=5)

    def start_targets(self) -> list[Target]:
        folder = self.folder
        meshlet = [str(self.args.meshlet)]
        (folder / "upstream.conf").write_text(_nginx_upstream(folder))
        targets = [Target("upstream direct", UPSTREAM_PORT, tls=False)]
        targets[0].process = self.start(
            ["nginx", "-c", str(folder / "upstream.conf"), "-e", "stderr"], "upstream.log"
        )
        _wait_port(UPSTREAM_PORT)
        (folder / "nginx-tls.conf").write_text(_nginx_tls(folder, PORTS["nginx"]))
        nginx = Target("nginx", PORTS["nginx"])
        nginx.process = self.start(
            ["nginx", "-c", str(folder / "nginx-tls.conf"), "-e", "stderr"], "nginx.log"
        )
        (folder / "haproxy.cfg").write_text(_haproxy(folder, PORTS["HAProxy"]))
        haproxy = Target("HAProxy", PORTS["HAProxy"])
        haproxy.process = self.start(["haproxy", "-f", str(folder / "haproxy.cfg")], "haproxy.log")
        targets += [nginx, haproxy]
        for concurrency in self.args.concurrency:
            name = f"meshlet sidecar, concurrency {concurrency}"
            port = PORTS[name]
            yaml = folder / f"sidecar-{concurrency}.yaml"
            yaml.write_text(_sidecar_yaml(folder, port))
            base = 25000 + 10 * concurrency
            target = Target(name, port)
            target.process = self.start(
                [
                    *meshlet, "sidecar", "-f", str(yaml), "--concurrency", str(concurrency),
                    "--admin-port", str(base), "--status-port", str(base + 1),
                    "--prometheus-port", str(base + 2), "--log-level", "warning",
                ],
                f"sidecar-{concurrency}.log",
            )  # fmt: skip
            _wait_ready(base + 1)
            targets.append(target)
        for target in targets:
            _wait_port(target.port)
        time.sleep(1)
        return targets

    # --- measurements ---------------------------------------------------------------------

    def _measured(self, target: Target, command: list[str], timeout: float) -> tuple[str, float]:
        pids = target.pids()
        before = _cpu_seconds(pids)
        out = _run(command, env=self.env, timeout=timeout)
        return out, _cpu_seconds(pids) - before

    def keep_alive(self, target: Target) -> None:
        seconds = self.args.seconds
        out, cpu = self._measured(
            target,
            ["wrk", "-t1", "-c50", f"-d{seconds}s", target.url],
            seconds + 30,
        )
        requests = _wrk_requests(out)
        target.result["keepalive_rps"] = _wrk_rps(out)
        target.result["cpu_us_per_request"] = round(cpu / max(requests, 1) * 1e6, 1)
        target.result["keepalive_errors"] = _wrk_errors(out)

    def handshakes(self, target: Target) -> None:
        seconds = self.args.seconds
        out, cpu = self._measured(
            target,
            ["wrk", "-t1", "-c8", f"-d{seconds}s", "-H", "Connection: close", target.url],
            seconds + 30,
        )
        requests = _wrk_requests(out)
        target.result["handshake_rps"] = _wrk_rps(out)
        target.result["cpu_us_per_handshake"] = round(cpu / max(requests, 1) * 1e6, 1)
        target.result["handshakes_per_cpu_second"] = round(requests / cpu, 1) if cpu else None

    def http2(self, target: Target) -> None:
        seconds = self.args.seconds
        out, cpu = self._measured(
            target,
            ["h2load", "-c50", "-m10", "-D", str(seconds), target.url],
            seconds + 30,
        )
        match = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
        done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
        target.result["h2_rps"] = float(match.group(1)) if match else None
        if done and cpu:
            target.result["h2_cpu_us_per_request"] = round(
                cpu / max(int(done.group(2)), 1) * 1e6, 1
            )

    def paced(self, target: Target) -> None:
        command = [
            sys.executable, str(HERE / "paced.py"), target.url,
            "--rate", str(self.args.rate), "--connections", "10",
            "--seconds", str(self.args.seconds),
        ]  # fmt: skip
        if target.tls:
            command += ["--cert", str(self.folder / "client.crt"),
                        "--key", str(self.folder / "client.key")]  # fmt: skip
        result = json.loads(_run(command, timeout=self.args.seconds + 60))
        target.result.update(
            paced_rate=result["rate"], p50_ms=result["p50_ms"], p99_ms=result["p99_ms"],
            paced_errors=result["errors"],
        )  # fmt: skip

    def memory(self, target: Target) -> None:
        target.result["pss_mb"] = _pss_mb(target.pids())
        target.result["alone_mb"] = _alone_mb(target.pids())
        target.result["processes"] = len(target.pids())


def _wrk_rps(out: str) -> float:
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(match.group(1)) if match else 0.0


def _wrk_requests(out: str) -> int:
    match = re.search(r"(\d+) requests in", out)
    return int(match.group(1)) if match else 0


def _wrk_errors(out: str) -> int:
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    total = sum(int(g) for g in match.groups()) if match else 0
    return total + (int(non_2xx.group(1)) if non_2xx else 0)


def main() -> int:
    parser = argparse.ArgumentParser(description="meshlet's sidecar beside nginx and HAProxy")
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", "10")))
    parser.add_argument("--rate", type=int, default=1000, help="the paced latency run's req/s")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--preload", type=Path, required=True)
    parser.add_argument("--meshlet", type=Path, default=REPO / ".venv" / "bin" / "meshlet")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.json")
    parser.add_argument("--label", default="", help="what this run measures (kept in the JSON)")
    args = parser.parse_args()
    for tool in ("nginx", "haproxy", "wrk", "h2load", "openssl"):
        if shutil.which(tool) is None:
            print(f"bench: {tool} is missing (bench/run.sh installs it)", file=sys.stderr)
            return 1
    folder = Path(tempfile.mkdtemp(prefix="meshlet-bench-"))
    bench = Bench(args, folder)
    try:
        make_certificates(folder)
        targets = bench.start_targets()
        for target in targets:
            print(f"bench: {target.name} …", file=sys.stderr, flush=True)
            bench.keep_alive(target)
            bench.paced(target)
            if target.tls:
                bench.handshakes(target)
                bench.http2(target)
            bench.memory(target)
            print(f"bench: {target.name}: {json.dumps(target.result)}", file=sys.stderr)
    finally:
        bench.stop_all()
        for log in sorted(bench.logs.glob("*.log")):
            text = log.read_text(errors="replace")
            if any(word in text for word in ("Traceback", "[emerg]", "[ALERT]", "error")):
                print(f"bench: {log.name}:\n{text[-2000:]}", file=sys.stderr)
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(bench.logs, ignore_errors=True)
    report = {
        "label": args.label,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "openssl": _run(["openssl", "version"], timeout=10).strip(),
            "nginx": subprocess.run(
                ["nginx", "-v"], capture_output=True, text=True, check=False
            ).stderr.strip(),
            "haproxy": _run(["haproxy", "-v"], timeout=10).splitlines()[0],
            "wrk": "wrk -t1 -c50 (keep-alive), -c8 Connection: close (handshakes)",
        },
        "seconds": args.seconds,
        "rate": args.rate,
        "targets": {target.name: target.result for target in targets},
    }
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
