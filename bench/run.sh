#!/usr/bin/env bash
# The benchmark in one command: meshlet's sidecar (concurrency 1 and 2), nginx and HAProxy
# terminating mutual TLS in front of the same nginx upstream, and the upstream direct.
#
#   bench/run.sh [--seconds N] [--rate R] [--label TEXT]
#
# Installs what is missing (nginx, haproxy, wrk, nghttp2-client with apt; matplotlib and
# uvloop in a venv of its own), compiles the LD_PRELOAD shim that gives wrk and h2load a
# client certificate, runs bench/run.py (every run bounded in time; it stops what it
# started, by PID), then writes the table and the chart into docs/benchmarks.md.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
venv="${MESHLET_BENCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/meshlet-bench/venv}"

need=()
command -v nginx >/dev/null || need+=(nginx)
command -v haproxy >/dev/null || need+=(haproxy)
command -v wrk >/dev/null || need+=(wrk)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v gcc >/dev/null || need+=(gcc)
command -v openssl >/dev/null || need+=(openssl)
if ((${#need[@]})); then
    echo "bench: installing ${need[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [[ ! -x "$venv/bin/python" ]]; then
    echo "bench: creating $venv" >&2
    python3 -m venv "$venv"
fi
"$venv/bin/python" -c 'import matplotlib, uvloop' 2>/dev/null \
    || "$venv/bin/pip" install -q 'matplotlib>=3.7,<4' 'uvloop>=0.19,<1'

if [[ ! -x "$repo/.venv/bin/meshlet" ]]; then
    echo "bench: $repo/.venv/bin/meshlet is missing (install the project first)" >&2
    exit 1
fi

build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
gcc -shared -fPIC -O2 -o "$build/client_cert_preload.so" "$here/client_cert_preload.c" -ldl

"$venv/bin/python" "$here/run.py" --preload "$build/client_cert_preload.so" \
    --meshlet "$repo/.venv/bin/meshlet" --out "$repo/docs/benchmarks.json" "$@" >/dev/null
"$venv/bin/python" "$here/report.py" "$repo/docs/benchmarks.json" \
    --markdown "$repo/docs/benchmarks.md" --chart "$repo/docs/benchmarks.png"
