#!/usr/bin/env bash
# Set up .venv (idempotent) and run the main job or the test suite.
#   scripts/dev.sh main [MODEL]   export -> info -> cut -> verify on a default model
#   scripts/dev.sh test [PYTEST ARGS]
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.graphfeat-installed

if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e ".[mindspore,test,plot,openvino]"
    echo "$want" > "$STAMP"
fi

cmd=${1:-main}
shift || true
case "$cmd" in
    main) exec "$VENV/bin/graphfeat" demo "$@" ;;
    test) exec "$VENV/bin/python" -m pytest "$@" ;;
    *) echo "usage: scripts/dev.sh main [MODEL] | test [PYTEST ARGS]" >&2; exit 2 ;;
esac
