"""Run MindSpore jobs in this process and print each result as JSON.

This is the worker side of the protocol in ``graphfeat.runtime.workers``.
``graphfeat export`` runs every export here, out of its own process: a failed
MindSpore export leaves the process unable to export again, and MindSpore's
log lines stay out of the user's terminal.

``python -m exporters.worker JOB ARGS`` runs one job; the last stdout line is
``{"ok": true, "result": {...}}`` or ``{"ok": false, "error": "..."}``.
``python -m exporters.worker --serve MAX_RSS_MB`` runs one job per stdin line
(``{"job": ..., "args": ...}``) and answers each on a stdout line that starts
with ``ANSWER_PREFIX``; the answer says ``"last": true`` when the process ends
after it: after a failed job, or when it holds more than MAX_RSS_MB of memory.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys


def _export(args: dict) -> dict:
    """Export a registered ``model_name`` to ``output``, or the cell a ``cell`` factory (``package.module:factory``,
    called with ``cell_kwargs``) returns; the other arguments are the fields of an ``ExportOptions``
    (``ExportOptions.to_json``). The working directory is importable (``python -m``)."""
    from graphfeat.runtime import ExportOptions

    from .onnx_export import export_model

    args = dict(args)
    model, output = args.pop("model_name", None), args.pop("output", None)
    options = ExportOptions.from_json(args)
    if options.cell:
        from .cells import build_from_factory

        model, _ = build_from_factory(options.cell, options.cell_kwargs)
    return dataclasses.asdict(export_model(model, output, options))


def _levels(args: dict) -> dict:
    """The MindSpore feature levels ``names`` of a model on the input saved at ``input``."""
    import numpy as np
    from mindspore import Tensor

    from graphfeat.errors import GraphfeatError

    from .factory import create_model
    from .init import deferred_parameters

    data = np.load(args["input"])
    with deferred_parameters():  # the structure only, for the names of every level (past a default selection)
        all_names = [e["name"] for e in create_model(args["model"], features_only=True, init=False).feature_info.info]
    unknown = [n for n in args["names"] if n not in all_names]
    if unknown:
        raise GraphfeatError(f"{args['model']} has no feature level(s) {unknown}; its levels: {all_names}")
    model = create_model(args["model"], seed=args.get("seed", 0), checkpoint_path=args.get("checkpoint", ""),
                         features_only=True, auto_mapping=True, out_indices=range(len(all_names)))
    out = model(Tensor(data))
    out = out if isinstance(out, tuple) else (out,)
    by_name = dict(zip(all_names, out))
    np.savez(args["output"], **{f"level/{n}": by_name[n].asnumpy() for n in args["names"]})
    return {"names": args["names"]}


def _models(args: dict) -> list[str]:
    """The registered model names."""
    from .registry import list_models

    return list_models()


JOBS = {"export": _export, "levels": _levels, "models": _models}


def _run(job: str, args: dict) -> dict:
    try:
        return {"ok": True, "result": JOBS[job](args)}
    except Exception as exc:  # reported to the parent, which decides how to show it
        from graphfeat.errors import GraphfeatError

        kind = "user" if isinstance(exc, (GraphfeatError, FileNotFoundError)) else "internal"
        return {"ok": False, "kind": kind, "error": str(exc) or type(exc).__name__}


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _serve(max_rss_mb: float) -> None:
    from graphfeat.runtime import ANSWER_PREFIX

    from ._mindspore import release_memory

    for line in sys.stdin:
        request = json.loads(line)
        answer = _run(request["job"], request["args"])
        release_memory()  # what the job left, before the bound is checked
        answer["last"] = not answer["ok"] or _rss_mb() > max_rss_mb
        sys.stdout.write("\n" + ANSWER_PREFIX + json.dumps(answer) + "\n")
        sys.stdout.flush()
        if answer["last"]:
            break


def configure_process() -> None:
    """Settings for a process that graphfeat started for its jobs, and that nobody else's code shares:
    glibc reuses large freed buffers (`_heap`; ``GRAPHFEAT_HEAP=off`` keeps glibc's defaults)."""
    from ._heap import apply_heap_policy

    apply_heap_policy()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    configure_process()
    if argv[0] == "--serve":
        _serve(float(argv[1]))
    else:
        result = _run(argv[0], json.loads(argv[1]))
        sys.stdout.write("\n" + json.dumps(result) + "\n")
        sys.stdout.flush()
    # MindSpore prints harmless Cell.__del__ tracebacks at interpreter exit; skip them.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
