"""Inference time of the cut feature pyramid on ONNX Runtime (CPU), side by side with the
MindSpore feature wrapper, the deepest-level-only cut and the full classifier.

    .venv/bin/python bench/inference.py                     # --quick (the default): few repeats
    .venv/bin/python bench/inference.py --models resnet18 vgg11 --full

One model per family (``--models`` chooses), exported at 224 px into
``bench/.cache`` if missing (needs the mindspore extra, 5-30 s each). Per
model and batch size (1 and 8) it reports medians of:

* **MindSpore**: ``exporters.create_model(name, features_only=True,
  out_indices=<pyramid>, seed=0)`` in GRAPH_MODE on CPU, after warm-up
  (compilation excluded), in its own process, never concurrently with ORT;
* **ORT pyramid**: ``graphfeat.cut_file(path, indices=feature_info.pyramid_indices())``,
  the deepest level at each stride 4/8/16/32;
* **ORT deepest**: the same cut with only the deepest of those levels;
* **ORT full**: the exported classifier;
* **ORT pre-act**: the pyramid cut instead at each level's *pre-activation*
  tensor (the Conv/Add/BN output feeding the level's final activation), the
  fusion-point experiment. Exposing a Conv output as a graph output keeps ONNX
  Runtime from fusing that Conv with its activation; the "unfused act." column
  counts the activation nodes left standalone in ORT's optimized graph.

The ORT variants run in one process, one session alive at a time (ORT's threads
spin after each run by default; a second live session's spinning threads take
the cores of the one being timed), in whole rounds over the variants so that
load drift hits them alike, with ORT's default options (all graph
optimizations, default thread pool, spinning on, as deployed).
Targets: ORT pyramid >= 2x faster than MindSpore on every family; the
pyramid at most 5% slower than the deepest-only cut.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from _common import ChildError, ensure_export, machine_note, run_child, secs, table, verdict  # noqa: E402

MODELS = ["resnet18", "resnest50", "repvgg_a0", "mobilenet_v3_small_100", "convnext_tiny", "efficientnet_b0",
          "rexnet_10", "hrnet_w18", "vgg11", "mobilenet_v2_100"]
BATCHES = (1, 8)
SIZE = 224
ACTIVATIONS = {"Relu", "Clip", "HardSwish", "HardSigmoid", "Sigmoid", "LeakyRelu", "Gelu", "Tanh", "Elu", "Selu",
               "Softplus", "PRelu"}
#: producers whose output ORT would fuse with a following activation
FUSABLE = {"Conv", "Add", "BatchNormalization", "Gemm", "MatMul"}
VARIANTS = ["full", "pyramid", "deepest", "preact"]
#: rounds over the variants (each round times every variant once, one session at a time)
ROUNDS = 2


def repeats(quick: bool) -> dict[int, tuple[int, int]]:
    """batch -> (warm-up runs, timed runs)."""
    return {1: (2, 10), 8: (1, 3)} if quick else {1: (5, 40), 8: (2, 10)}


# -- children ---------------------------------------------------------------------
def ms_time(model: str, indices: list[int], plan: dict[str, list[int]], budget: float = 60.0) -> dict:
    """Median seconds of the MindSpore feature wrapper per batch, GRAPH_MODE, after warm-up
    (timed runs stop early once they took ``budget`` seconds: at least one is always taken)."""
    import numpy as np
    import mindspore as ms

    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    from exporters import create_model

    net = create_model(model, features_only=True, out_indices=indices, seed=0)
    out = {}
    for batch, (warm, runs) in plan.items():
        x = ms.Tensor(np.random.default_rng(0).standard_normal((int(batch), 3, SIZE, SIZE)).astype(np.float32))
        t0 = time.perf_counter()
        for _ in range(warm):
            [o.asnumpy() for o in net(x)]
        first = time.perf_counter() - t0
        times: list[float] = []
        while len(times) < runs and (not times or sum(times) < budget):
            t0 = time.perf_counter()
            [o.asnumpy() for o in net(x)]  # asnumpy waits for the (asynchronous) result
            times.append(time.perf_counter() - t0)
        out[batch] = {"median": statistics.median(times), "warmup": first, "runs": len(times)}
    return {"times": out}


def ort_time(paths: dict[str, str], plan: dict[str, list[int]]) -> dict:
    """Interleaved medians per variant and batch, and the optimized graphs' op counts."""
    import os
    import tempfile

    import numpy as np
    import onnx
    import onnxruntime as ort

    graphs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, path in paths.items():
            so = ort.SessionOptions()
            so.optimized_model_filepath = os.path.join(tmp, f"{label}.onnx")
            so.log_severity_level = 3
            ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            opt = onnx.load(so.optimized_model_filepath, load_external_data=False)
            ops = [n.op_type for n in opt.graph.node]
            graphs[label] = {"nodes": len(ops), "unfused_act": sum(op in ACTIVATIONS for op in ops)}
    times: dict[str, dict] = {label: {} for label in paths}
    samples: dict[tuple[str, int], list[float]] = {}
    for _ in range(ROUNDS):  # whole rounds, so that load drift on a shared machine hits every variant alike
        for label, path in paths.items():
            # one session alive at a time: ORT's threads spin after a run (its default, as deployed), and a
            # second session's spinning threads would take the cores of the one being timed
            so = ort.SessionOptions()
            so.log_severity_level = 3
            sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            name = sess.get_inputs()[0].name
            for batch, (warm, runs) in plan.items():
                x = np.random.default_rng(0).standard_normal((int(batch), 3, SIZE, SIZE)).astype(np.float32)
                for _ in range(warm):
                    sess.run(None, {name: x})
                for _ in range(runs):
                    t0 = time.perf_counter()
                    sess.run(None, {name: x})
                    samples.setdefault((label, batch), []).append(time.perf_counter() - t0)
            del sess
    for (label, batch), values in samples.items():
        times[label][batch] = statistics.median(values)
    return {"times": times, "graphs": graphs}


# -- the cuts ---------------------------------------------------------------------
def preactivation(path: Path, tensors: list[str]) -> tuple[list[str], list[str]]:
    """For each level tensor: the tensor feeding its final activation when that activation
    follows a fusable op (else the tensor itself), and a description ``Relu<-Add``."""
    import onnx

    model = onnx.load(path, load_external_data=False)
    producer = {o: n for n in model.graph.node for o in n.output}
    pre, desc = [], []
    for t in tensors:
        node = producer.get(t)
        if node is None:
            pre.append(t)
            desc.append("input")
            continue
        source = _activation_input(node, producer)
        if source is not None and source in producer and producer[source].op_type in FUSABLE:
            pre.append(source)
            desc.append(f"{_act_name(node, producer)}<-{producer[source].op_type}")
        else:
            pre.append(t)
            desc.append(node.op_type)
    return pre, desc


def _activation_input(node, producer) -> str | None:
    if node.op_type in ACTIVATIONS:
        return node.input[0]
    if node.op_type == "Mul" and len(node.input) == 2:  # swish: x * Sigmoid(x)
        for a, b in (node.input, reversed(node.input)):
            p = producer.get(b)
            if p is not None and p.op_type in ("Sigmoid", "HardSigmoid") and p.input[0] == a:
                return a
    return None


def _act_name(node, producer) -> str:
    return "Swish(Mul)" if node.op_type == "Mul" else node.op_type


def make_cuts(model: str, src: Path, tmp: Path) -> dict:
    import graphfeat

    info = graphfeat.feature_info(src)
    indices = info.pyramid_indices()
    paths = {"full": src,
             "pyramid": graphfeat.cut_file(src, tmp / f"{model}.pyramid.onnx", indices=indices, force=True),
             "deepest": graphfeat.cut_file(src, tmp / f"{model}.deepest.onnx", indices=indices[-1:], force=True)}
    by_index = {lv.index: lv.tensor for lv in graphfeat.feature_levels(src)}
    tensors = [by_index[i] for i in indices]
    pre, desc = preactivation(src, tensors)
    if pre != tensors:
        paths["preact"] = graphfeat.cut_file(src, tmp / f"{model}.preact.onnx", tensors=pre, force=True)
    names = [info.module_name(i) for i in indices]
    return {"indices": indices, "names": names, "paths": {k: str(v) for k, v in paths.items()}, "levels": desc}


# -- driver -------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=MODELS, help="one model per family (default: all ten)")
    parser.add_argument("--quick", action="store_true", default=True, help="few repeats (the default)")
    parser.add_argument("--full", dest="quick", action="store_false", help="more repeats")
    parser.add_argument("--no-mindspore", action="store_true", help="skip the MindSpore timings")
    parser.add_argument("--ms-batches", nargs="*", type=int, default=list(BATCHES),
                        help="batch sizes timed on MindSpore (default: 1 8)")
    parser.add_argument("--ms-budget", type=float, default=60.0,
                        help="seconds of timed MindSpore runs per batch before stopping early (default 60)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per child run")
    args = parser.parse_args()
    plan = {str(b): list(r) for b, r in repeats(args.quick).items()}
    print(f"# inference ({machine_note()}; {SIZE} px; warm-up/timed runs per batch: "
          f"{ {int(b): tuple(r) for b, r in plan.items()} })\n", flush=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="graphfeat-infer-") as tmp:
        for model in args.models:
            res = results[model] = {}
            model_plan = plan
            try:
                try:
                    src = ensure_export(model)
                except SystemExit as exc:  # a model whose export does not hold at batch 2: batch 1 only
                    print(f"{model}: {exc}; retrying with --static-batch (batch 1 only)", flush=True)
                    res["note"] = "static batch: the dynamic-batch export failed"
                    src = ensure_export(model, static_batch=True)
                    model_plan = {"1": plan["1"]}
                res.update(make_cuts(model, src, Path(tmp)))
            except (SystemExit, Exception) as exc:  # noqa: BLE001 - report and go on with the next model
                res["error"] = f"export/cut failed: {exc}"
                print(f"{model}: {res['error']}", flush=True)
                continue
            try:
                res["ort"] = run_child("inference:ort_time", timeout=args.timeout, paths=res["paths"], plan=model_plan)
            except ChildError as exc:
                res["ort_error"] = str(exc)
            if not args.no_mindspore:
                try:
                    ms_plan = {b: r for b, r in model_plan.items() if int(b) in args.ms_batches}
                    res["ms"] = run_child("inference:ms_time", timeout=args.timeout, model=model,
                                          indices=res["indices"], plan=ms_plan, budget=args.ms_budget)
                except ChildError as exc:
                    res["ms_error"] = str(exc)
            print(f"{model}: done ({', '.join(res['levels'])})", flush=True)
    report(results)
    return 0


def report(results: dict) -> None:
    rows, fusion, targets = [], [], {"speedup": [], "overhead": []}
    for model, res in results.items():
        if "error" in res:
            rows.append([model, "-", res["error"][:90], "", "", "", "", "", ""])
            continue
        ort = res.get("ort", {}).get("times", {})
        ms = res.get("ms", {}).get("times", {})
        for b in BATCHES:
            key = str(b)
            t = {v: ort.get(v, {}).get(key) for v in VARIANTS}
            m = ms.get(key, {}).get("median")
            if t["pyramid"] is None and m is None:
                continue
            speed = m / t["pyramid"] if m and t["pyramid"] else None
            over = t["pyramid"] / t["deepest"] - 1 if t["pyramid"] and t["deepest"] else None
            if speed is not None:
                targets["speedup"].append((model, b, speed))
            if over is not None:
                targets["overhead"].append((model, b, over))
            rows.append([model, b, secs(m) if m else res.get("ms_error", "-")[:60], secs(t["pyramid"]),
                         secs(t["deepest"]), secs(t["full"]), f"{speed:.1f}x" if speed else "-",
                         f"{100 * over:+.1f}%" if over is not None else "-",
                         ", ".join(res["names"])])
            if t["preact"]:
                g = res["ort"]["graphs"]
                fusion.append([model, b, ", ".join(res["levels"]), secs(t["pyramid"]), secs(t["preact"]),
                               f"{100 * (t['preact'] / t['pyramid'] - 1):+.1f}%",
                               f"{g['pyramid']['unfused_act']} -> {g['preact']['unfused_act']}"])
        if "ort_error" in res:
            rows.append([model, "-", "", f"ORT failed: {res['ort_error'][:80]}", "", "", "", "", ""])
    print("\n## Median time per call\n")
    print(table(["model", "batch", "MindSpore", "ORT pyramid", "ORT deepest", "ORT full", "MS / pyramid",
                 "pyramid vs deepest", "pyramid levels"], rows))
    print("\n## Fusion point: levels cut at the post-activation tensor (as exported) vs the pre-activation one\n")
    print(table(["model", "batch", "level = activation<-producer", "ORT post-act (pyramid)", "ORT pre-act",
                 "pre-act cost", "unfused act. post -> pre"], fusion) if fusion else "(no level follows a fusable op)")
    print("\n## Targets\n")
    if targets["speedup"]:
        worst = min(targets["speedup"], key=lambda r: r[2])
        n_ok = sum(s >= 2 for _, _, s in targets["speedup"])
        print(f"- ORT pyramid >= 2x faster than MindSpore: {n_ok}/{len(targets['speedup'])} (model, batch) pairs; "
              f"worst {worst[0]} batch {worst[1]}: {worst[2]:.1f}x -> {verdict(n_ok == len(targets['speedup']))}")
    else:
        print("- ORT pyramid >= 2x faster than MindSpore: not measured")
    if targets["overhead"]:
        worst = max(targets["overhead"], key=lambda r: r[2])
        n_ok = sum(o <= 0.05 for _, _, o in targets["overhead"])
        print(f"- pyramid <= 5% over the deepest-only cut: {n_ok}/{len(targets['overhead'])} pairs; "
              f"worst {worst[0]} batch {worst[1]}: {100 * worst[2]:+.1f}% -> {verdict(n_ok == len(targets['overhead']))}")
    missing = [m for m, r in results.items() if "error" in r or "ort_error" in r or "ms_error" in r]
    if missing:
        print(f"- not (fully) measured: {', '.join(missing)} (see the table)")


if __name__ == "__main__":
    sys.exit(main())
