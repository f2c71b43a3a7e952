#!/usr/bin/env bash
# A TLS scan as users run it: sslyze against a SIMPLE and a MUTUAL port of
# `meshlet sidecar`, and against nginx with Debian's TLS defaults beside it.
#
#   bench/tls_scan.sh
#
# sslyze lives in a virtual environment of its own (it pins its own `cryptography`).
# Everything started here is stopped here, by PID.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
venv="${MESHLET_SSLYZE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/meshlet-bench/sslyze}"
meshlet="$repo/.venv/bin/meshlet"

command -v nginx >/dev/null || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
}
if [[ ! -x "$venv/bin/sslyze" ]]; then
    echo "tls_scan: installing sslyze into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'sslyze>=6,<7'
fi

work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

cd "$work"
openssl req -x509 -sha256 -nodes -days 30 -newkey rsa:2048 -subj '/O=example Inc./CN=example.com' \
    -keyout ca.key -out ca.crt 2>/dev/null
for name in server client; do
    openssl req -out "$name.csr" -newkey rsa:2048 -nodes -keyout "$name.key" \
        -subj "/CN=$name.test.svc.cluster.local/O=$name organization" 2>/dev/null
    openssl x509 -req -days 30 -CA ca.crt -CAkey ca.key -set_serial 1 -in "$name.csr" \
        -out "$name.crt" 2>/dev/null
done

cat > sidecar.yaml <<YAML
apiVersion: networking.istio.io/v1alpha3
kind: Sidecar
metadata: {name: ingress-sidecar, namespace: test}
spec:
  workloadSelector: {labels: {app: httpbin}}
  ingress:
  - port: {number: 19443, protocol: HTTPS, name: simple}
    bind: 127.0.0.1
    defaultEndpoint: 0.0.0.0:19080
    tls: {mode: SIMPLE, privateKey: $work/server.key, serverCertificate: $work/server.crt}
  - port: {number: 19444, protocol: HTTPS, name: mutual}
    bind: 127.0.0.1
    defaultEndpoint: 0.0.0.0:19080
    tls:
      mode: MUTUAL
      privateKey: $work/server.key
      serverCertificate: $work/server.crt
      caCertificates: $work/ca.crt
YAML

# nginx as Debian ships it: the TLS lines of /etc/nginx/nginx.conf, nothing added.
debian_tls="$(grep -E '^\s*ssl_(protocols|prefer_server_ciphers)' /etc/nginx/nginx.conf || true)"
cat > nginx.conf <<CONF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log stderr warn;
events { worker_connections 256; }
http {
    access_log off;
    $debian_tls
    server {
        listen 127.0.0.1:19445 ssl;
        ssl_certificate $work/server.crt;
        ssl_certificate_key $work/server.key;
        location / { return 200 "ok\n"; }
    }
    server {
        listen 127.0.0.1:19080;
        location / { return 200 "ok\n"; }
    }
}
CONF

nginx -c "$work/nginx.conf" -e stderr >nginx.log 2>&1 &
pids+=($!)
"$meshlet" sidecar -f sidecar.yaml --concurrency 1 --admin-port 25100 --status-port 25101 \
    --prometheus-port 25102 --log-level warning >sidecar.log 2>&1 &
pids+=($!)
for _ in $(seq 150); do
    curl -fsS -o /dev/null http://127.0.0.1:25101/healthz/ready 2>/dev/null && break
    sleep 0.2
done
curl -fsS -o /dev/null http://127.0.0.1:25101/healthz/ready

scan() {  # name, target, extra args
    local name="$1" target="$2"
    shift 2
    timeout 300 "$venv/bin/sslyze" --quiet --json_out="$work/$name.json" "$@" "$target" >/dev/null || true
    "$venv/bin/python" "$here/tls_scan_summary.py" "$name" "$work/$name.json"
}

scan "meshlet SIMPLE (127.0.0.1:19443)" 127.0.0.1:19443
scan "meshlet MUTUAL (127.0.0.1:19444)" 127.0.0.1:19444 --cert "$work/client.crt" --key "$work/client.key"
scan "nginx, Debian defaults (127.0.0.1:19445)" 127.0.0.1:19445
