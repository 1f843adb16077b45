"""How fast, and in how much memory, ``graphfeat.cut_file`` cuts a model, side by side with
``onnx.utils.extract_model``, onnx-graphsurgeon and the floor ``onnx.load`` + ``onnx.save``.

    .venv/bin/python bench/cut_speed.py            # --quick: 3 runs per variant (2 at 100k nodes)
    .venv/bin/python bench/cut_speed.py --runs 7 --models hrnet_w32 --sizes 10000

Models: hrnet_w32 (stage1..stage4) and resnet50 (layer1..layer4), exported into
``bench/.cache/MODEL.static.onnx`` if missing (``--static-batch``: the batch
dimension does not matter to a cut; needs the mindspore extra, minutes each), and
synthetic ResNet-like graphs of 10k and 100k nodes (``layerK.B.conv1.weight``
initializers, tiny tensors so that the graph dominates) cut by layer name.
Every variant cuts at the same four tensors: graphfeat resolves the layer
names (that is part of its time), the others are given the tensors it
resolved. Each run is a fresh process (see ``bench/_common.py``); wall time
is the operation only (imports excluded), the median over the runs; peak RSS
is the maximum over the runs and includes the interpreter and imports
(the "imports only" row gives that floor). Then cProfile shows where
graphfeat spends its time on the largest graph (networkx's share included).
Targets: graphfeat within 1.3x of the floor on hrnet_w32; peak RSS within
2.5x of the file size; 100k nodes within 12x of the 10k-node time (issue #16: within 11x, and
within 3x of the floor at 100k nodes). On the synthetic graphs, the checks the cut runs on its result
(onnx's checker and strict shape inference) are also timed alone, beside the floor: the part of the
cut that is onnx's C++, not graphfeat's Python.

``cut --strides`` (issue #14: what it adds to a cut at most 20% of the cut): the analysis alone
(``trunk_candidates`` on a built index, its onnx shape inference included) and ``cut_file(strides=...)``
end to end, both beside ``cut_file(layers=...)``. The strides cut runs on the file itself for the
exported models (they carry metadata: the deepest named level per stride), and on a copy of the
synthetic graph with every name replaced by a number, so that the trunk analysis is what resolves it.
The strides cut reuses the analysis' shape inference for its check (the rule in
``graphfeat.graph.check_model``), so end to end it adds less than the analysis alone.

Re-finding levels by fingerprint (issue #17; ``--refind-only`` runs just this): hrnet_w32
simplified by onnxsim, its recorded level tensors renamed, cut by layer name, round-robin
with the cut of the original export, the cut of the simplified file with the names kept and
one ORT forward pass of the simplified file (default session from the path + one run at the
probe size). Target: re-finding (re-found minus names-kept cut) adds at most that forward pass.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from _common import (  # noqa: E402
    CACHE, ChildError, ensure_export, import_baseline, machine_note, median, mib, run_child, secs, table,
    verdict, warm_page_cache,
)

REAL = {"hrnet_w32": ["stage1", "stage2", "stage3", "stage4"], "resnet50": ["layer1", "layer2", "layer3", "layer4"]}
SYNTH_LAYERS = ["layer1", "layer2", "layer3", "layer4"]
VARIANTS = ["load+save (floor)", "graphfeat cut_file (layers)", "graphfeat cut_file (tensors)",
            "onnx.utils.extract_model", "onnx-graphsurgeon", "graphfeat stride + trunk analysis",
            "graphfeat cut_file (strides)", "the result's checker + strict inference alone"]
#: the strides each graph has (the synthetic stem is stride 2 on a 32x32 input)
STRIDES = {"hrnet_w32": [4, 8, 16, 32], "resnet50": [4, 8, 16, 32], "synthetic": [2, 4, 8, 16]}


# -- the variants (each runs in its own child process) ------------------------------
def v_floor(src: str, dst: str) -> dict:
    import time

    import onnx

    t0 = time.perf_counter()
    onnx.save(onnx.load(src), dst)
    return {"seconds": time.perf_counter() - t0}


def v_graphfeat(src: str, dst: str, layers: list[str] | None = None, tensors: list[str] | None = None,
                strides: list[int] | None = None) -> dict:
    import time

    from graphfeat import cut_file  # imports the cut's modules (graphfeat imports its names on first use)

    t0 = time.perf_counter()
    cut_file(src, dst, layers=layers, tensors=tensors, strides=strides, force=True)
    return {"seconds": time.perf_counter() - t0}


def v_strides(src: str, dst: str) -> dict:
    """What ``cut --strides`` adds to a cut: measured strides and the trunk (``trunk_candidates``) on the
    graph index the cut builds anyway (so the index is built outside the timer)."""
    import time

    from graphfeat.graph import GraphIndex
    from graphfeat.onnxfile import load_skeleton
    from graphfeat.resolve import trunk_candidates

    index = GraphIndex(load_skeleton(src)[0])
    t0 = time.perf_counter()
    index.types  # the analysis' shape inference (strict), timed apart: the strides cut's check reuses it
    t1 = time.perf_counter()
    found = trunk_candidates(index)
    t2 = time.perf_counter()
    return {"seconds": t2 - t0, "inference": t1 - t0, "strides": sorted(found)}


def v_checks(src: str, dst: str, layers: list[str]) -> dict:
    """What the layers cut's check runs, timed alone: onnx's structural checker and strict shape inference
    on the cut's result (its new outputs untyped again, as the check sees them; the synthetic graphs hold
    no weight large enough for a skeleton). The floor of any cut that checks its result in full."""
    import time

    import onnx

    import graphfeat

    graphfeat.cut_file(src, dst, layers=layers, force=True)
    model = onnx.load(dst)
    for out in model.graph.output:
        out.ClearField("type")
    t0 = time.perf_counter()
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    t1 = time.perf_counter()
    typed = onnx.load(dst)
    t2 = time.perf_counter()
    onnx.checker.check_model(typed)
    t3 = time.perf_counter()
    return {"seconds": (t1 - t0) + (t3 - t2), "inference": t1 - t0}


def v_extract(src: str, dst: str, inputs: list[str], outputs: list[str]) -> dict:
    import time

    import onnx.utils

    t0 = time.perf_counter()
    onnx.utils.extract_model(src, dst, inputs, outputs)  # checker + shape inference included, as by default
    return {"seconds": time.perf_counter() - t0}


def v_graphsurgeon(src: str, dst: str, outputs: list[str]) -> dict:
    import time

    import numpy as np
    import onnx
    import onnx_graphsurgeon as gs

    t0 = time.perf_counter()
    graph = gs.import_onnx(onnx.load(src))
    tensors = graph.tensors()
    graph.outputs = [tensors[name].to_variable(dtype=np.float32) for name in outputs]
    graph.cleanup()
    onnx.save(gs.export_onnx(graph), dst)
    return {"seconds": time.perf_counter() - t0}


def v_profile(src: str, dst: str, layers: list[str], top: int = 12) -> dict:
    """cProfile one graphfeat cut: time per package, networkx's share, the top functions."""
    import cProfile
    import pstats
    import time

    from graphfeat import cut_file  # its imports outside the profile

    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.runcall(cut_file, src, dst, layers=layers, force=True)
    wall = time.perf_counter() - t0
    stats = pstats.Stats(prof)
    by_pkg: dict[str, float] = {}
    rows = []
    for (file, line, fn), (cc, nc, tt, ct, _) in stats.stats.items():
        by_pkg[_package(file, fn)] = by_pkg.get(_package(file, fn), 0.0) + tt
        rows.append((ct, tt, nc, f"{_short(file)}:{line}({fn})"))
    rows.sort(reverse=True)
    graphfeat_rows = [r for r in rows if "graphfeat/" in r[3]][:top]
    return {"wall": wall, "by_package": sorted(by_pkg.items(), key=lambda kv: -kv[1]), "top": graphfeat_rows,
            "total": sum(by_pkg.values())}


def _package(file: str, fn: str) -> str:
    if file == "~":  # C builtins: name them by the method (protobuf's SerializeToString, ...)
        return "builtin " + fn.strip("<>").replace("built-in method ", "").split(" of ")[0]
    p = file.replace(os.sep, "/")
    for pkg in ("networkx", "onnx_graphsurgeon", "onnx", "google/protobuf", "numpy"):
        if f"/{pkg}/" in p:
            return pkg.replace("google/", "")
    if "/graphfeat/" in p:
        return "graphfeat." + Path(p).stem
    return "python stdlib"


def _short(file: str) -> str:
    p = file.replace(os.sep, "/")
    return p[p.rfind("graphfeat/"):] if "graphfeat/" in p else Path(p).name


# -- synthetic graphs ---------------------------------------------------------------
def build_synthetic(nodes: int, path: str, channels: int = 4, anonymous: bool = False) -> dict:
    """A ResNet-like chain (stem, then layer1..layer4 of Conv/BN/Relu/Conv/BN/Add/Relu blocks,
    a strided downsample at the start of layer2..4) with about ``nodes`` nodes. ``anonymous``: every
    node, tensor and initializer named by a number (a stripped file: only ``--strides`` resolves it)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits, graph_nodes = [], []

    def param(name: str, shape: tuple[int, ...]) -> str:
        inits.append(numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.1, name))
        return name

    def conv(x: str, name: str, cin: int, k: int, stride: int = 1) -> str:
        w = param(f"{name}.weight", (channels, cin, k, k))
        graph_nodes.append(helper.make_node("Conv", [x, w], [f"/{name}/Conv_output_0"], name=f"/{name}/Conv",
                                            kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4))
        return graph_nodes[-1].output[0]

    def bn(x: str, name: str) -> str:
        ins = [x] + [param(f"{name}.{p}", (channels,)) for p in ("weight", "bias", "running_mean")]
        inits.append(numpy_helper.from_array(np.ones(channels, np.float32), f"{name}.running_var"))
        graph_nodes.append(helper.make_node("BatchNormalization", ins + [f"{name}.running_var"],
                                            [f"/{name}/BN_output_0"], name=f"/{name}/BN"))
        return graph_nodes[-1].output[0]

    def op(kind: str, ins: list[str], name: str) -> str:
        graph_nodes.append(helper.make_node(kind, ins, [f"/{name}/{kind}_output_0"], name=f"/{name}/{kind}"))
        return graph_nodes[-1].output[0]

    x = op("Relu", [bn(conv("input", "conv1", 3, 3, 2), "bn1")], "relu")
    blocks = max(1, (nodes - 3) // 7 // 4)
    for layer in range(1, 5):
        for b in range(blocks):
            pre = f"layer{layer}.{b}"
            stride = 2 if layer > 1 and b == 0 else 1
            y = op("Relu", [bn(conv(x, f"{pre}.conv1", channels, 3, stride), f"{pre}.bn1")], f"{pre}.relu1")
            y = bn(conv(y, f"{pre}.conv2", channels, 1), f"{pre}.bn2")
            short = bn(conv(x, f"{pre}.downsample.0", channels, 1, 2), f"{pre}.downsample.1") if stride == 2 else x
            x = op("Relu", [op("Add", [y, short], f"{pre}.add")], f"{pre}.relu2")
    pooled = op("GlobalAveragePool", [x], "avgpool")
    graph_nodes.append(helper.make_node("Flatten", [pooled], ["logits"], name="/flatten/Flatten"))
    graph = helper.make_graph(
        graph_nodes, f"synthetic_{nodes}", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, channels])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="bench")
    model.ir_version = 8
    if anonymous:
        _anonymize(model)
    onnx.save(model, path)
    return {"nodes": len(graph_nodes), "initializers": len(inits)}


def _anonymize(model) -> None:
    """Name every node, tensor and initializer of ``model`` by a number (graph input and output kept)."""
    g = model.graph
    keep = {i.name for i in g.input if i.name not in {t.name for t in g.initializer}} | {o.name for o in g.output}
    names: dict[str, str] = {}

    def new(name: str) -> str:
        return name if not name or name in keep else names.setdefault(name, str(len(names)))

    for t in g.initializer:
        t.name = new(t.name)
    for k, node in enumerate(g.node):
        node.name = f"n{k}"
        node.input[:] = [new(n) for n in node.input]
        node.output[:] = [new(n) for n in node.output]


def resolve_tensors(path: Path, layers: list[str]) -> list[str]:
    """The tensors graphfeat resolves ``layers`` to (what the other tools are given)."""
    from graphfeat.graph import GraphIndex
    from graphfeat.onnxfile import load_model
    from graphfeat.resolve import Resolver

    resolver = Resolver(GraphIndex(load_model(path)))
    return [resolver.resolve(name).tensor for name in layers]


def graph_input(path: Path) -> str:
    import onnx

    m = onnx.load(path, load_external_data=False)
    inits = {t.name for t in m.graph.initializer}
    return next(i.name for i in m.graph.input if i.name not in inits)


def result_nodes(path: Path) -> int | None:
    import onnx

    return len(onnx.load(path, load_external_data=False).graph.node) if path.exists() else None


# -- driver -------------------------------------------------------------------------
def bench_model(label: str, src: Path, layers: list[str], runs: int, out_dir: Path, timeout: float,
                strides: tuple[Path, list[int]] | None = None) -> dict:
    """Every variant on ``src``; ``strides``: the file and strides for ``cut_file(strides=...)``."""
    tensors = resolve_tensors(src, layers)
    inp = graph_input(src)
    size = src.stat().st_size + sum(p.stat().st_size for p in src.parent.glob(src.name + ".data"))
    warm_page_cache(src)
    jobs = {
        VARIANTS[0]: ("cut_speed:v_floor", {}),
        VARIANTS[1]: ("cut_speed:v_graphfeat", {"layers": layers}),
        VARIANTS[2]: ("cut_speed:v_graphfeat", {"tensors": tensors}),
        VARIANTS[3]: ("cut_speed:v_extract", {"inputs": [inp], "outputs": tensors}),
        VARIANTS[4]: ("cut_speed:v_graphsurgeon", {"outputs": tensors}),
        VARIANTS[5]: ("cut_speed:v_strides", {"src": str(strides[0])} if strides else {}),
    }
    if strides:
        jobs[VARIANTS[6]] = ("cut_speed:v_graphfeat", {"src": str(strides[0]), "strides": strides[1]})
    if label.startswith("synthetic"):
        jobs[VARIANTS[7]] = ("cut_speed:v_checks", {"layers": layers})
    rows = {}
    for k, (variant, (target, extra)) in enumerate(jobs.items()):
        dst = out_dir / f"{src.stem}.v{k}.onnx"
        try:
            results = [run_child(target, timeout=timeout, **{"src": str(src), "dst": str(dst), **extra})
                       for _ in range(runs)]
            rows[variant] = {"seconds": median(results), "peak_rss": max(r["peak_rss"] for r in results),
                             "nodes": result_nodes(dst), "runs": [r["seconds"] for r in results]}
            if "inference" in results[0]:
                rows[variant]["inference"] = median(results, "inference")
        except ChildError as exc:
            rows[variant] = {"error": str(exc)}
        for p in (dst, dst.with_name(dst.name + ".data")):
            p.unlink(missing_ok=True)
        print(f"  {label}: {variant}: " + (secs(rows[variant].get("seconds")) if "error" not in rows[variant]
                                             else rows[variant]["error"]), flush=True)
    return {"label": label, "size": size, "tensors": tensors, "rows": rows}


def print_model(res: dict, baseline: int) -> None:
    floor = res["rows"][VARIANTS[0]].get("seconds")
    print(f"\n### {res['label']} ({mib(res['size'])}); cut at {', '.join(res['tensors'])}\n")
    body = []
    for variant, r in res["rows"].items():
        if "error" in r:
            body.append([variant, "failed", "-", "-", "-", r["error"][:80]])
            continue
        ratio = f"{r['seconds'] / floor:.2f}x" if floor else "-"
        body.append([variant, secs(r["seconds"]), ratio, mib(r["peak_rss"]),
                     f"{r['peak_rss'] / res['size']:.2f}x", r["nodes"]])
    print(table(["variant", "median wall", "vs floor", "peak RSS", "RSS / file", "nodes out"], body))
    print(f"(peak RSS includes {mib(baseline)} for the interpreter and imports)")
    for line in strides_ratios(res):
        print(line)


def strides_ratios(res: dict) -> list[str]:
    """What ``--strides`` adds to a cut: the analysis alone, and the strides cut end to end, vs the layers cut."""
    rows = res["rows"]
    cut = rows[VARIANTS[1]].get("seconds")
    analysis = rows[VARIANTS[5]].get("seconds")
    end_to_end = rows.get(VARIANTS[6], {}).get("seconds")
    lines = []
    if cut and analysis:
        inference = rows[VARIANTS[5]].get("inference", 0.0)
        lines.append(f"stride + trunk analysis alone / cut (layers): {analysis / cut:.0%}; without its shape "
                     f"inference ({secs(inference)}, which the strides cut's check reuses): "
                     f"{(analysis - inference) / cut:.0%}")
    if cut and end_to_end:
        added = (end_to_end - cut) / cut
        lines.append(f"cut (strides) end to end vs cut (layers): {secs(end_to_end)} vs {secs(cut)}, "
                     f"{added:+.0%} -> {verdict(added <= 0.20)} (target: at most +20%)")
    return lines


def print_profile(label: str, prof: dict) -> None:
    print(f"\n### Where graphfeat cut_file spends its time: {label} "
          f"(cProfile, {secs(prof['wall'])} under the profiler)\n")
    total = prof["total"] or 1.0
    print(table(["package / C builtin", "own time", "share"],
                [[pkg, secs(t), f"{100 * t / total:.0f}%"] for pkg, t in prof["by_package"][:10]]))
    nx_time = sum(t for pkg, t in prof["by_package"] if pkg == "networkx")
    print(f"networkx: {secs(nx_time)} own time, {100 * nx_time / total:.1f}% of the profile")
    print()
    print(table(["graphfeat function", "cumulative", "own", "calls"],
                [[fn, secs(ct), secs(tt), nc] for ct, tt, nc, fn in prof["top"]]))


# -- re-finding levels by fingerprint (issue #17) -----------------------------------
#: the model, the levels cut, and the target: re-finding adds at most one ORT forward pass to the cut
REFIND_MODEL, REFIND_LAYERS = "hrnet_w32", REAL["hrnet_w32"]
REFIND_VARIANTS = ["cut, original export", "cut, onnxsim-simplified (names kept)",
                   "cut, onnxsim-simplified, levels re-found by fingerprint",
                   "one ORT forward pass of the simplified model",
                   "  the same, ORT threads not spin-waiting (as graphfeat's probe)"]


def v_refind_prepare(src: str, simplified: str, renamed: str) -> dict:
    """``onnxsim.simplify`` the export; then a copy whose recorded level tensors are renamed, as a
    tool renames a level it rewrites (onnxsim folding a BatchNorm that ends a level into its Conv)."""
    import json

    import onnx
    import onnxsim

    model, ok = onnxsim.simplify(onnx.load(src))
    if not ok:
        raise RuntimeError("onnxsim could not validate the simplified model")
    onnx.save(model, simplified)
    key = next(p.key for p in model.metadata_props if p.key.startswith("graphfeat."))
    record = json.loads(next(p.value for p in model.metadata_props if p.key == key))
    produced = {o for n in model.graph.node for o in n.output}
    kept = [lv["name"] for lv in record["levels"] if lv["tensor"] in produced]
    new = {lv["tensor"]: f"renamed/{lv['name']}" for lv in record["levels"]}
    for node in model.graph.node:
        node.input[:] = [new.get(i, i) for i in node.input]
        node.output[:] = [new.get(o, o) for o in node.output]
    for vi in [*model.graph.value_info, *model.graph.output]:
        vi.name = new.get(vi.name, vi.name)
    onnx.save(model, renamed)
    return {"levels": [lv["name"] for lv in record["levels"]], "kept_by_onnxsim": kept,
            "input_size": record["input_size"], "probe_seed": record.get("probe_seed")}


def v_refind_cut(src: str, dst: str, layers: list[str]) -> dict:
    """``cut_file`` by layer names; how each kept level was resolved (from the result's record)."""
    import time

    from graphfeat import cut_file  # its imports outside the timer
    from graphfeat.levels import read_feature_record
    from graphfeat.onnxfile import load_model

    t0 = time.perf_counter()
    cut_file(src, dst, layers=layers, force=True)
    seconds = time.perf_counter() - t0
    record = read_feature_record(load_model(dst))[0]
    return {"seconds": seconds, "resolved_by": [lv.get("resolved_by", "metadata") for lv in record["levels"]]}


def v_forward(src: str, input_size: list[int], seed: int | None, spin: bool = True) -> dict:
    """One forward pass at the probe size, as a user runs the file: a default ORT CPU session built from
    the path, then one run of the export's probe input. ``seconds`` includes the session; ``run`` does not.
    ``spin=False``: ORT's threads sleep between ops (``session.intra_op.allow_spinning`` 0), as in the probe."""
    import time

    import onnxruntime as ort

    from graphfeat.resolve import PROBE_SEED, probe_input

    x = probe_input(input_size, seed=PROBE_SEED if seed is None else seed)
    so = ort.SessionOptions()
    if not spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    t0 = time.perf_counter()
    session = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
    t1 = time.perf_counter()
    session.run(None, {session.get_inputs()[0].name: x})
    t2 = time.perf_counter()
    return {"seconds": t2 - t0, "session": t1 - t0, "run": t2 - t1}


def bench_refind(runs: int, out_dir: Path, timeout: float) -> dict | None:
    """The four variants on one simplified export, round-robin (a change in load hits them all alike)."""
    try:
        src = ensure_export(REFIND_MODEL, static_batch=True)
    except SystemExit as exc:
        print(f"  re-find: not measured: {exc}", flush=True)
        return None
    simplified, renamed = out_dir / "refind.sim.onnx", out_dir / "refind.sim.renamed.onnx"
    prep = run_child("cut_speed:v_refind_prepare", timeout=timeout, src=str(src), simplified=str(simplified),
                     renamed=str(renamed))
    warm_page_cache(src, simplified, renamed)
    jobs = {REFIND_VARIANTS[0]: ("cut_speed:v_refind_cut", {"src": str(src), "layers": REFIND_LAYERS}),
            REFIND_VARIANTS[1]: ("cut_speed:v_refind_cut", {"src": str(simplified), "layers": REFIND_LAYERS}),
            REFIND_VARIANTS[2]: ("cut_speed:v_refind_cut", {"src": str(renamed), "layers": REFIND_LAYERS}),
            REFIND_VARIANTS[3]: ("cut_speed:v_forward", {"src": str(simplified), "input_size": prep["input_size"],
                                                         "seed": prep["probe_seed"]}),
            REFIND_VARIANTS[4]: ("cut_speed:v_forward", {"src": str(simplified), "input_size": prep["input_size"],
                                                         "seed": prep["probe_seed"], "spin": False})}
    got: dict[str, list[dict]] = {v: [] for v in jobs}
    for r in range(runs):
        for k, (variant, (target, extra)) in enumerate(jobs.items()):
            extra = dict(extra, dst=str(out_dir / f"refind.v{k}.onnx")) if target.endswith("v_refind_cut") else extra
            got[variant].append(run_child(target, timeout=timeout, **extra))
        print(f"  re-find: round {r + 1}/{runs}: " + ", ".join(secs(v[-1]["seconds"]) for v in got.values()), flush=True)
    prof = run_child("cut_speed:v_profile", timeout=timeout, src=str(renamed), dst=str(out_dir / "refind.p.onnx"),
                     layers=REFIND_LAYERS)
    return {"prep": prep, "runs": got, "profile": prof}


def print_refind(res: dict) -> None:
    prep, got = res["prep"], res["runs"]
    med = {v: median(rs) for v, rs in got.items()}
    fwd = got[REFIND_VARIANTS[3]]
    session, run = median(fwd, "session"), median(fwd, "run")
    size = "x".join(map(str, prep["input_size"]))
    print(f"\n### Re-finding levels by fingerprint: {REFIND_MODEL}, onnxsim-simplified, cut at "
          f"{', '.join(REFIND_LAYERS)} (median of {len(fwd)} rounds, round-robin)\n")
    print(f"onnxsim kept the recorded tensor of {len(prep['kept_by_onnxsim'])} of {len(prep['levels'])} levels "
          f"({', '.join(prep['kept_by_onnxsim']) or 'none'}); the re-find file has all {len(prep['levels'])} renamed.\n")
    body = []
    for variant, rs in got.items():
        how = sorted(set(sum((r.get("resolved_by", []) for r in rs), []))) or ["-"]
        body.append([variant, secs(med[variant]), ", ".join(how), " / ".join(secs(r["seconds"]) for r in rs)])
    print(table(["variant", "median wall", "levels resolved by", "runs"], body))
    print(f"forward pass = ORT session from the file ({secs(session)}) + one run at the probe size {size} ({secs(run)})")
    added = med[REFIND_VARIANTS[2]] - med[REFIND_VARIANTS[1]]
    vs_original = med[REFIND_VARIANTS[2]] - med[REFIND_VARIANTS[0]]
    print(f"re-find overhead = cut(re-found) - cut(same simplified file, names kept) = {secs(added)}: "
          f"{added / med[REFIND_VARIANTS[3]]:.2f}x the forward pass with its session, {added / run:.2f}x the run alone")
    print(f"(cut(re-found) - cut(original export) = {secs(vs_original)}: it also counts reading onnxsim's "
          f"float_data weights, which the original's raw_data cut never parses)")
    ratio = added / med[REFIND_VARIANTS[3]]
    quiet = med[REFIND_VARIANTS[4]]
    print(f"against the forward pass with ORT's threads not spin-waiting ({secs(quiet)}): {added / quiet:.2f}x")
    print(f"- re-finding adds at most one forward pass (session + run) to the cut: {ratio:.2f}x -> {verdict(ratio <= 1)}")
    print_profile("re-find cut", res["profile"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", default=True, help="3 runs per variant, 2 at 100k nodes (default)")
    parser.add_argument("--runs", type=int, help="runs per variant (overrides --quick)")
    parser.add_argument("--models", nargs="*", default=list(REAL), help=f"exported models (default {list(REAL)})")
    parser.add_argument("--sizes", nargs="*", type=int, default=[10_000, 100_000], help="synthetic node counts")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per child run")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile breakdown")
    parser.add_argument("--refind-only", action="store_true", help="only the re-find-by-fingerprint section")
    args = parser.parse_args()
    if args.refind_only:
        print(f"# re-find speed ({machine_note()})\n", flush=True)
        with tempfile.TemporaryDirectory(prefix="graphfeat-bench-") as tmp:
            refind = bench_refind(args.runs or 3, Path(tmp), args.timeout)
        if refind:
            print_refind(refind)
        return 0
    for m in args.models:
        if m not in REAL:
            parser.error(f"unknown model {m!r}; choose from {list(REAL)}")
    print(f"# cut speed ({machine_note()})\n", flush=True)
    baseline = import_baseline(["onnx", "graphfeat", "networkx", "numpy"])
    results = []
    with tempfile.TemporaryDirectory(prefix="graphfeat-bench-") as tmp:
        tmp = Path(tmp)
        for model in args.models:
            try:  # the batch dimension does not matter to a cut; a static export is faster
                src = ensure_export(model, static_batch=True)
            except SystemExit as exc:
                print(f"  {model}: not measured: {exc}", flush=True)
                continue
            results.append(bench_model(model, src, REAL[model], args.runs or 3, tmp, args.timeout,
                                       strides=(src, STRIDES[model])))
        synth_paths = {}
        for n in args.sizes:
            path = tmp / f"synthetic_{n}.onnx"
            info = run_child("cut_speed:build_synthetic", nodes=n, path=str(path))
            anonymous = tmp / f"synthetic_{n}.anonymous.onnx"
            run_child("cut_speed:build_synthetic", nodes=n, path=str(anonymous), anonymous=True)
            synth_paths[n] = path
            label = f"synthetic {info['nodes']:,} nodes"
            runs = args.runs or (2 if n >= 50_000 else 3)
            results.append(bench_model(label, path, SYNTH_LAYERS, runs, tmp, args.timeout,
                                       strides=(anonymous, STRIDES["synthetic"])))
        profiles = []
        if not args.no_profile:
            if args.sizes:
                n = max(args.sizes)
                profiles.append((f"synthetic {n:,} nodes",
                                 run_child("cut_speed:v_profile", src=str(synth_paths[n]), dst=str(tmp / "p.onnx"),
                                           layers=SYNTH_LAYERS, timeout=args.timeout)))
            if (CACHE / "hrnet_w32.static.onnx").exists() and "hrnet_w32" in args.models:
                profiles.append(("hrnet_w32", run_child("cut_speed:v_profile", src=str(CACHE / "hrnet_w32.static.onnx"),
                                                        dst=str(tmp / "p.onnx"), layers=REAL["hrnet_w32"],
                                                        timeout=args.timeout)))
        refind = bench_refind(args.runs or 3, tmp, args.timeout) if REFIND_MODEL in args.models else None

    print(f"\n## Results (imports-only child: {mib(baseline)} peak RSS)")
    for res in results:
        print_model(res, baseline)
    for label, prof in profiles:
        print_profile(label, prof)
    if refind:
        print_refind(refind)
    print("\n## Targets\n")
    print_targets(results, baseline)
    return 0


def print_targets(results: list[dict], baseline: int) -> None:
    by_label = {r["label"]: r for r in results}
    gf = VARIANTS[1]
    lines = []
    hr = by_label.get("hrnet_w32")
    if hr and "seconds" in hr["rows"][gf]:
        ratio = hr["rows"][gf]["seconds"] / hr["rows"][VARIANTS[0]]["seconds"]
        lines.append(f"- graphfeat within 1.3x of load+save on hrnet_w32: {ratio:.2f}x -> {verdict(ratio <= 1.3)}")
    for res in results:
        if res["label"] in REAL and "peak_rss" in res["rows"][gf]:
            rss = res["rows"][gf]["peak_rss"]
            ratio = rss / res["size"]
            lines.append(f"- peak RSS within 2.5x of the file size on {res['label']}: {mib(rss)} / {mib(res['size'])} "
                         f"= {ratio:.2f}x ({(rss - baseline) / res['size']:.2f}x without the imports) "
                         f"-> {verdict(ratio <= 2.5)}")
    synth = [r for r in results if r["label"].startswith("synthetic") and "seconds" in r["rows"][gf]]
    if len(synth) >= 2:
        small, big = synth[0], synth[-1]
        ratio = big["rows"][gf]["seconds"] / small["rows"][gf]["seconds"]
        scale = int(big["label"].split()[1].replace(",", "")) / int(small["label"].split()[1].replace(",", ""))
        lines.append(f"- {big['label']} within 12x (#16: 11x) of the {small['label']} time ({scale:.0f}x the nodes): "
                     f"{ratio:.1f}x -> {verdict(ratio <= 12)} ({verdict(ratio <= 11)} at 11x)")
        floor = big["rows"][VARIANTS[0]].get("seconds")
        if floor:
            over = big["rows"][gf]["seconds"] / floor
            lines.append(f"- {big['label']} cut (layers) within 3x of load+save: {over:.2f}x -> {verdict(over <= 3)}")
        checks = [r["rows"].get(VARIANTS[7], {}).get("seconds") for r in (small, big)]
        if floor and all(checks):
            lines.append(f"  (the result's checker + strict inference alone: {checks[1] / floor:.2f}x the floor at "
                         f"{big['label']}, {checks[1] / checks[0]:.1f}x the {small['label']} time)")
    for res in results:
        if res["label"] == "hrnet_w32" or res is (synth[-1] if synth else None):
            lines.extend(f"- {res['label']}: {line}" for line in strides_ratios(res))
    print("\n".join(lines) if lines else "(no target measured)")


if __name__ == "__main__":
    sys.exit(main())
