"""A stand-in for the sidecar in the daemon's tests only: it serves ``/healthz/ready``
on 15021 (and reports the files it can see under ``/etc/istio`` and the token), so
that pods with injection can be started before the real sidecar is wired in."""

from __future__ import annotations

import http.server
import json
import os
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/healthz/ready":
            body = b"ready\n"
        else:
            seen = {
                "argv": sys.argv[1:],
                "gid": os.getgid(),
                "tls_certs": sorted(os.listdir("/etc/istio/tls-certs"))
                if os.path.isdir("/etc/istio/tls-certs")
                else None,
                "token": os.path.exists("/var/run/secrets/tokens/istio-token"),
                "root": os.path.exists("/var/run/secrets/istio/root-cert.pem"),
            }
            body = json.dumps(seen).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


if __name__ == "__main__":
    http.server.ThreadingHTTPServer(("0.0.0.0", 15021), Handler).serve_forever()
