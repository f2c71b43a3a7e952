#!/bin/sh
# meshlet's main job: installs what meshlet needs, then runs the reference scenario
# (TLS termination on the sidecar) end to end through the real `meshlet` command, in a
# scratch directory, and ends with a verdict per check. The cluster keeps running.
#
#   scripts/demo.sh              run the scenario (as root)
#   scripts/demo.sh --cleanup    its step 11: remove the cluster and the scratch files
#   scripts/demo.sh --dir DIR    use DIR as the scratch directory (default /tmp/meshlet-demo)
set -eu
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
if [ "$(id -u)" != 0 ]; then
    echo "meshlet's demo installs a local cluster (network namespaces, iptables): run it as root, e.g. sudo $0" >&2
    exit 3
fi
exec .venv/bin/python -m meshlet.scenario --samples "$PWD/samples" "$@"
