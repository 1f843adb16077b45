#!/usr/bin/env bash
# Set up the virtual environments (idempotent) and run the main job, the tests or a benchmark.
#   scripts/dev.sh main [MODEL]        export -> info -> cut -> verify on a default model
#   scripts/dev.sh test [PYTEST ARGS]  the core suite in .venv-core (graphfeat alone, no MindSpore),
#                                      then tests/exporters, tests/integration and tests/toolchain in .venv (everything)
#   scripts/dev.sh bench cut_speed|export_speed|suite|inference|... [ARGS]   (adds the bench extra)
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)

# setup VENV EXTRAS: create VENV and install the project with EXTRAS, once per pyproject.toml
setup() {
    local venv=$1 extras=$2 stamp="$1/.graphfeat-installed-${2//,/-}"
    [ -x "$venv/bin/python" ] || "$PY" -m venv "$venv"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        echo "installing graphfeat[$extras] into $venv (log: $venv/install.log)"
        { "$venv/bin/python" -m pip install --quiet --upgrade pip &&
          "$venv/bin/python" -m pip install --quiet -e ".[$extras]"; } > "$venv/install.log" 2>&1 ||
            { cat "$venv/install.log" >&2; exit 1; }
        echo "$want" > "$stamp"
    fi
}

VENV=.venv
cmd=${1:-main}
shift || true
case "$cmd" in
    main) setup "$VENV" mindspore,test,plot,openvino,toolchain,mindcv; exec "$VENV/bin/graphfeat" demo "$@" ;;
    test)
        setup .venv-core test,docs
        # one pytest-xdist worker per core, at most 4 (in the second suite each holds its own MindSpore,
        # ~1-3 GB); GRAPHFEAT_TEST_WORKERS=0 runs the tests in pytest's own process
        workers=${GRAPHFEAT_TEST_WORKERS:-$(n=$(nproc); echo $(( n < 4 ? n : 4 )))}
        echo "== core suite (graphfeat without MindSpore, .venv-core, $workers workers)"
        # exit code 5 means "nothing selected" (say, by -k): fine as long as one of the two runs tested something
        rc_core=0; .venv-core/bin/python -m pytest -n "$workers" tests/core "$@" || rc_core=$?
        if [ "$rc_core" != 0 ] && [ "$rc_core" != 5 ]; then exit "$rc_core"; fi
        setup "$VENV" mindspore,test,plot,openvino,toolchain,mindcv
        # each worker's MindSpore and ONNX Runtime, and the export workers it starts, get cores/workers
        # threads (GRAPHFEAT_THREADS, as `graphfeat export --jobs N` does), so that they do not oversubscribe
        if [ "$workers" -gt 1 ] && [ -z "${GRAPHFEAT_THREADS:-}" ]; then
            GRAPHFEAT_THREADS=$(( $(nproc) / workers > 0 ? $(nproc) / workers : 1 )); export GRAPHFEAT_THREADS
        fi
        echo "== exporters, integration and toolchain suites (MindSpore, .venv, $workers workers)"
        rc_rest=0; "$VENV/bin/python" -m pytest -n "$workers" --dist loadgroup \
            tests/exporters tests/integration tests/toolchain "$@" || rc_rest=$?
        if [ "$rc_core" = 5 ] && [ "$rc_rest" = 5 ]; then exit 5; fi
        if [ "$rc_rest" = 5 ]; then exit 0; fi
        exit "$rc_rest" ;;
    bench)
        script=bench/${1:-}.py
        if [ -z "${1:-}" ] || [ ! -f "$script" ]; then
            echo "usage: scripts/dev.sh bench NAME [ARGS]; NAME is one of:" $(cd bench && ls [a-z]*.py | sed 's/\.py$//') >&2
            exit 2
        fi
        shift
        setup "$VENV" mindspore,test,plot,openvino,toolchain,mindcv,bench
        exec "$VENV/bin/python" "$script" "$@" ;;
    *) echo "usage: scripts/dev.sh main [MODEL] | test [PYTEST ARGS] | bench NAME [ARGS]" >&2; exit 2 ;;
esac
