#!/usr/bin/env bash
# Bounded fuzzing with atheris (libFuzzer for Python) of the ClientHello parser, the
# HTTP/1.1 request path and the YAML loader.
#
#   bench/fuzz.sh [SECONDS_PER_TARGET]     (default 60)
#
# atheris is installed in a venv of its own, made with --system-site-packages on top of
# the project's venv so the code under test is the checkout's. Findings (crash-* files)
# are left in the current directory and the script exits non-zero.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
seconds="${1:-60}"
venv="${MESHLET_FUZZ_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/meshlet-bench/atheris}"

if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import atheris' 2>/dev/null; then
    echo "fuzz: installing atheris into $venv" >&2
    "$repo/.venv/bin/python" -m venv --system-site-packages "$venv"
    "$venv/bin/pip" install -q 'atheris>=2.3,<3'
fi

# the project's own packages (xds-protos …), which the base interpreter does not have
site="$("$repo/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
findings="$PWD"
status=0
for target in client_hello http1 yaml; do
    echo "fuzz: $target for ${seconds}s" >&2
    corpus="$(mktemp -d)"
    log="$(mktemp)"
    code=0
    (cd "$here" && PYTHONPATH="$repo/src:$repo:$site" timeout $((seconds + 120)) \
        "$venv/bin/python" fuzz.py "$target" -max_total_time="$seconds" -rss_limit_mb=2048 \
        -timeout=10 -artifact_prefix="$findings/$target-" "$corpus") >"$log" 2>&1 || code=$?
    grep -E "^#[0-9]+" "$log" | tail -1 >&2 || true
    if ((code != 0)); then
        echo "fuzz: $target found a problem (exit $code):" >&2
        tail -30 "$log" >&2
        status=1
    else
        echo "fuzz: $target: no finding" >&2
    fi
    rm -rf "$corpus" "$log"
done
exit "$status"
