#!/usr/bin/env bash
# Set up .venv (idempotent) and run the main job or the test suite.
#   scripts/dev.sh main [MODEL]   export -> info -> cut -> verify on a default model
#   scripts/dev.sh test [PYTEST ARGS]
#   scripts/dev.sh bench cut_speed|big_model|inference|check_rule|fuzz [ARGS]   (adds the bench extra)
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
    bench)
        script=bench/${1:-}.py
        if [ -z "${1:-}" ] || [ ! -f "$script" ]; then
            echo "usage: scripts/dev.sh bench NAME [ARGS]; NAME is one of:" $(cd bench && ls [a-z]*.py | sed 's/\.py$//') >&2
            exit 2
        fi
        shift
        if [ ! -f "$VENV/.graphfeat-bench" ] || [ "$(cat "$VENV/.graphfeat-bench")" != "$want" ]; then
            "$VENV/bin/python" -m pip install --quiet -e ".[mindspore,test,plot,openvino,bench]"
            echo "$want" > "$VENV/.graphfeat-bench"
        fi
        exec "$VENV/bin/python" "$script" "$@" ;;
    *) echo "usage: scripts/dev.sh main [MODEL] | test [PYTEST ARGS] | bench NAME [ARGS]" >&2; exit 2 ;;
esac
