"""MindSpore CPU speed under each oneDNN ISA cap (``ONEDNN_MAX_CPU_ISA``), side by side.

    python bench/mindspore_isa.py                 # all variants and workloads, 2 rounds (~8 min here)
    python bench/mindspore_isa.py --caps AVX2 AVX512_CORE --workloads conv3x3 resnet18 --rounds 1

Every variant runs in a fresh child process (the cap must be in place before
oneDNN's first kernel): ``default`` (no cap, ``GRAPHFEAT_ONEDNN_ISA=off``),
one child per ``ONEDNN_MAX_CPU_ISA`` value, and ``policy (auto)`` (what
``exporters`` decides by itself, ``GRAPHFEAT_ONEDNN_ISA`` unset). Each child
imports ``exporters`` first, reports ``isa_policy()`` (oneDNN's effective
ISA included), then for each workload: compiles and warms up (GRAPH_MODE,
batch 1), times the forward pass (3-20 runs, ``asnumpy()`` included), saves
the output, and (first round only) runs it once more with oneDNN's verbose
mode on to record which convolution / matmul implementations ran. With
``--rounds N`` every variant runs N times, in alternating order, and the
best run over all of them is reported: on a shared 2-core machine the
least disturbed run is the figure that compares.

The parent prints ms, GFLOP/s (micro-benchmarks), the ratio vs ``default``,
the output error vs ``default`` (max|out - ref| / max|ref|), the oneDNN
implementations, and whether the ``auto`` rule of ``exporters/_cpu.py``
picked the fastest measured cap on this machine. Nothing is asserted.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ChildError, machine_note, run_child, table  # noqa: E402

CAPS = ("AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI", "AVX512_CORE_BF16")

# name -> (description, GFLOP per forward or None)
WORKLOADS = {
    "conv3x3": ("4 x Conv2d 3x3, 64->64 ch, 56x56", 4 * 2 * 64 * 64 * 9 * 56 * 56 / 1e9),
    "conv1x1": ("4 x Conv2d 1x1, 256->256 ch, 56x56", 4 * 2 * 256 * 256 * 56 * 56 / 1e9),
    "dw3x3": ("4 x depthwise Conv2d 3x3, 256 ch, 56x56", 4 * 2 * 256 * 9 * 56 * 56 / 1e9),
    "matmul": ("MatMul 1024 x 1024 x 1024", 2 * 1024 ** 3 / 1e9),
    "resnet18": ("resnet18 classifier, 224 px", None),
    "mobilenet_v3_small_100": ("mobilenet_v3_small_100 classifier, 224 px", None),
}
MICRO = ("conv3x3", "conv1x1", "dw3x3", "matmul")


# -- child side ------------------------------------------------------------------------
def _build(name: str):
    """(cell, input) of a workload, with seeded weights so every child computes the same function."""
    import numpy as np
    from mindspore import Parameter, Tensor, nn, ops

    rng = np.random.default_rng(0)

    def w(*shape):
        fan_in = int(np.prod(shape[1:]))
        return Tensor((rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32))

    def x(*shape):
        return Tensor(rng.standard_normal(shape).astype(np.float32))

    if name == "conv3x3":
        cell = nn.SequentialCell([nn.Conv2d(64, 64, 3, pad_mode="same", has_bias=False, weight_init=w(64, 64, 3, 3))
                                  for _ in range(4)])
        return cell, x(1, 64, 56, 56)
    if name == "conv1x1":
        cell = nn.SequentialCell([nn.Conv2d(256, 256, 1, has_bias=False, weight_init=w(256, 256, 1, 1))
                                  for _ in range(4)])
        return cell, x(1, 256, 56, 56)
    if name == "dw3x3":
        cell = nn.SequentialCell([nn.Conv2d(256, 256, 3, pad_mode="same", group=256, has_bias=False,
                                            weight_init=w(256, 1, 3, 3)) for _ in range(4)])
        return cell, x(1, 256, 56, 56)
    if name == "matmul":
        class MatMul(nn.Cell):
            def __init__(self):
                super().__init__()
                self.w = Parameter(w(1024, 1024), name="w")

            def construct(self, a):
                return ops.matmul(a, self.w)

        return MatMul(), x(1024, 1024)
    from exporters import create_model

    return create_model(name, seed=0), x(1, 3, 224, 224)


@contextlib.contextmanager
def _capture_stdout(path: str):
    """Send fd 1 (where oneDNN's verbose lines go) to ``path`` for the duration."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(path, "w") as f:
        os.dup2(f.fileno(), 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _impls(cell, data, tmp: str) -> dict:
    """``{"convolution": {impl: count}, ...}`` of one forward pass, from oneDNN's verbose mode."""
    from exporters import _cpu

    lib = _cpu._libdnnl()
    if lib is None:
        return {}
    log = os.path.join(tmp, "verbose.txt")
    with _capture_stdout(log):
        lib.dnnl_set_verbose(1)
        cell(data).asnumpy()
        lib.dnnl_set_verbose(0)
    counts: dict = {}
    for line in Path(log).read_text(errors="replace").splitlines():
        parts = line.split(",")
        # onednn_verbose,v1,primitive,exec,cpu,<kind>,<impl>,...
        if len(parts) > 6 and parts[0] == "onednn_verbose" and "exec" in parts[2:4]:
            i = parts.index("exec")
            kind, impl = parts[i + 2], parts[i + 3]
            if kind in ("convolution", "matmul", "inner_product"):
                counts.setdefault(kind, Counter())[impl] += 1
    return {k: dict(v) for k, v in counts.items()}


def child_variant(workloads: list, out_dir: str, max_repeats: int = 20, budget: float = 3.0,
                  impls: bool = True) -> dict:
    """One variant: time every workload in this process (the ISA cap comes from the environment)."""
    import numpy as np

    import exporters  # noqa: F401  (applies or skips the cap, before MindSpore runs anything)
    from exporters._cpu import isa_policy
    import mindspore as ms

    policy = isa_policy()  # fixes oneDNN's ISA now: effective ISA as oneDNN reports it
    results = {}
    for name in workloads:
        cell, data = _build(name)
        cell.set_train(False)
        t0 = time.perf_counter()
        out = cell(data).asnumpy()  # compiles (GRAPH_MODE) and creates the oneDNN primitives
        first = time.perf_counter() - t0
        times = []
        t_end = time.perf_counter() + budget
        while len(times) < 3 or (len(times) < max_repeats and time.perf_counter() < t_end):
            t0 = time.perf_counter()
            cell(data).asnumpy()
            times.append(time.perf_counter() - t0)
        np.save(os.path.join(out_dir, f"{name}.npy"), out)
        results[name] = {"first": first, "times": times, "impls": _impls(cell, data, out_dir) if impls else {}}
    lib = exporters._cpu._libdnnl()
    version = None
    if lib is not None:
        import ctypes

        class _Version(ctypes.Structure):
            _fields_ = [("major", ctypes.c_int), ("minor", ctypes.c_int), ("patch", ctypes.c_int)]

        lib.dnnl_version.restype = ctypes.POINTER(_Version)
        v = lib.dnnl_version().contents
        version = f"{v.major}.{v.minor}.{v.patch}"
    return {"policy": policy, "results": results, "onednn": version, "mindspore": ms.__version__}


# -- parent side -----------------------------------------------------------------------
_ISA_VARS = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "GRAPHFEAT_ONEDNN_ISA")


@contextlib.contextmanager
def _env(**values):
    """Set (or, for None, remove) the ISA variables for the children started inside."""
    saved = {k: os.environ.get(k) for k in _ISA_VARS}
    for k in _ISA_VARS:
        os.environ.pop(k, None)
    os.environ.update({k: v for k, v in values.items() if v is not None})
    try:
        yield
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v


def _variants(caps) -> list:
    """(label, env) of every variant: default, each cap, and the exporters policy."""
    out = [("default", {"GRAPHFEAT_ONEDNN_ISA": "off"})]
    out += [(cap, {"ONEDNN_MAX_CPU_ISA": cap}) for cap in caps]
    out.append(("policy (auto)", {}))
    return out


def _ms(s: float) -> str:
    ms = s * 1000
    return f"{ms:.0f} ms" if ms >= 100 else f"{ms:.1f} ms" if ms >= 1 else f"{ms:.2f} ms"


def _rel_err(a, ref) -> float:
    import numpy as np

    return float(np.abs(a.astype(np.float64) - ref).max() / max(np.abs(ref).max(), 1e-30))


def _impl_note(impls: dict) -> str:
    parts = []
    for kind in ("convolution", "matmul", "inner_product"):
        for impl, n in sorted(impls.get(kind, {}).items(), key=lambda kv: -kv[1]):
            parts.append(f"{impl} x{n}")
    return ", ".join(parts) or "-"


def _run_variant(label: str, env: dict, workloads: list, tmp: str, budget: float, impls: bool) -> dict | None:
    import numpy as np

    out_dir = tempfile.mkdtemp(dir=tmp)
    t0 = time.perf_counter()
    with _env(**env):
        try:
            r = run_child("mindspore_isa:child_variant", timeout=1800, workloads=workloads, out_dir=out_dir,
                          budget=budget, impls=impls)
        except ChildError as exc:
            print(f"  - {label}: FAILED ({exc})", flush=True)
            return None
    r["outputs"] = {w: np.load(os.path.join(out_dir, f"{w}.npy")) for w in workloads}
    pol = r["policy"]
    print(f"  - {label}: effective ISA {pol['effective']} (cap {pol['cap']}, {pol['source']}); "
          f"child {time.perf_counter() - t0:.0f} s", flush=True)
    return r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--caps", nargs="+", default=list(CAPS),
                    help=f"ONEDNN_MAX_CPU_ISA values (default: {' '.join(CAPS)})")
    ap.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    ap.add_argument("--rounds", type=int, default=2,
                    help="children per variant, in alternating order (default 2); the best run over all counts")
    ap.add_argument("--budget", type=float, default=2.0,
                    help="seconds of timed runs per workload and child (min 3 runs)")
    args = ap.parse_args(argv)

    import numpy as np

    print(f"# MindSpore under oneDNN ISA caps ({machine_note()})\n")
    variants = _variants(args.caps)
    runs: dict = {}   # label -> first successful child result (policy, outputs, impls)
    times: dict = {}  # (label, workload) -> all timed runs over all rounds
    with tempfile.TemporaryDirectory(prefix="ms_isa_") as tmp:
        for rnd in range(args.rounds):
            order = variants if rnd % 2 == 0 else variants[::-1]
            print(f"round {rnd + 1}/{args.rounds}:", flush=True)
            for label, env in order:
                r = _run_variant(label, env, args.workloads, tmp, args.budget, impls=label not in runs)
                if r is None:
                    continue
                runs.setdefault(label, r)
                for w in args.workloads:
                    times.setdefault((label, w), []).extend(r["results"][w]["times"])

    if "default" not in runs:
        print("the default variant failed; nothing to compare")
        return 1
    runs = {label: runs[label] for label, _ in variants if label in runs}
    best = {key: min(ts) for key, ts in times.items()}
    base = runs["default"]
    print(f"\nMindSpore {base['mindspore']}, oneDNN {base['onednn']}, CPU: {base['policy']['cpu']}; GRAPH_MODE, "
          f"batch 1, 224 px for the models. time = best forward pass (asnumpy() included) over "
          f"{args.rounds} fresh child(ren) per variant after warm-up: the least disturbed run on a shared machine.\n")

    for w in args.workloads:
        desc, gflop = WORKLOADS[w]
        rows = []
        for label, r in runs.items():
            t = best[(label, w)]
            row = [label, r["policy"]["effective"], _ms(t)]
            if gflop:
                row.append(f"{gflop / t:.1f}")
            err = _rel_err(r["outputs"][w], base["outputs"][w].astype(np.float64))
            row += [f"{best[('default', w)] / t:.2f}x", f"{err:.1e}", f"{len(times[(label, w)])}",
                    _impl_note(r["results"][w]["impls"])]
            rows.append(row)
        headers = ["variant", "oneDNN ISA", "time"] + (["GFLOP/s"] if gflop else []) + \
                  ["vs default", "max err / max|ref|", "runs", "oneDNN implementations (one forward)"]
        print(f"### {w}: {desc}" + (f" ({gflop:.3f} GFLOP)" if gflop else "") + "\n")
        print(table(headers, rows) + "\n")

    # summary: which cap is fastest on the models, and did the rule pick it?
    models = [w for w in args.workloads if w not in MICRO] or list(args.workloads)
    labels = [lab for lab in runs if lab != "policy (auto)"]

    def total(label):
        return sum(best[(label, w)] for w in models)

    fastest = min(labels, key=total)
    policy = runs.get("policy (auto)", base)["policy"]
    chosen = policy["cap"] or "default"
    print("### Summary\n")
    rows = [[lab, runs[lab]["policy"]["effective"], _ms(total(lab)), f"{total('default') / total(lab):.2f}x"]
            for lab in labels]
    print(table(["variant", "oneDNN ISA", f"sum of best times ({', '.join(models)})", "vs default"], rows) + "\n")
    ok = chosen in runs and total(chosen) <= total(fastest) * 1.10
    print(f"- fastest measured: {fastest}; the auto rule chose {chosen}: {policy['reason']}")
    print(f"- rule verified on this machine: {'yes' if ok else 'NO'} "
          f"({chosen} is {'within 10% of' if ok else 'more than 10% slower than'} the fastest)")
    if "policy (auto)" in runs:
        p = runs["policy (auto)"]["policy"]
        print(f"- policy child: effective ISA {p['effective']}, applied={p['applied']}")
    errs = {lab: _rel_err(r["outputs"]["resnet18"], base["outputs"]["resnet18"].astype(np.float64))
            for lab, r in runs.items() if "resnet18" in r["outputs"]}
    if errs:
        worst = max(errs, key=errs.get)
        print(f"- numerics: resnet18 logits vs default, worst max|out - ref| / max|ref| = {errs[worst]:.1e} ({worst})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
