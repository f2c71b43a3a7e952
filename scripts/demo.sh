#!/bin/sh
# Installs everything meshlet needs, then runs meshlet's main job on the reference
# scenario's manifests (today: the analysis of every manifest of the scenario).
set -eu
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
set -x
.venv/bin/meshlet analyze --set values.pilot.env.ENABLE_TLS_ON_SIDECAR_INGRESS=true \
    -f examples/sidecar-tls-termination/
