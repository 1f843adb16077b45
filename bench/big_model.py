"""Peak memory of ``graphfeat cut`` on a model with more than 3 GB of external weights,
side by side with ``onnx.utils.extract_model`` on the same file.

    .venv/bin/python bench/big_model.py                 # 3.25 GiB of weights in a temp dir
    .venv/bin/python bench/big_model.py --gib 4 --extract-limit-gib 10 --tmp /path/with/space

The synthetic model (input ``[1, 4096, 4, 4]``; layer1..layer4, each a chain of
1x1 Conv 4096->4096 + Relu blocks with 64 MiB ``layerK.B.conv.weight`` tensors,
then a GlobalAveragePool head) is written into a temp directory, weights in
``model.onnx.data``, and deleted afterwards. The bench refuses to start when
the directory's disk has less than twice the space it needs at peak (the
model plus one copied output). Each variant runs in its own process
(``bench/_common.py``), one at a time:

* ``graphfeat cut`` with ``-o`` beside the input (weights referenced in place),
* ``graphfeat cut`` with ``-o`` in another directory (weight byte ranges streamed
  into ``<out>.data`` with ``sendfile``; the page cache fills, the process does not),
* ``onnx.utils.extract_model``: it loads every weight into memory, so its address
  space is capped (``RLIMIT_AS``, default 12 GiB or what is available) and a
  timeout applies; it is skipped with a note when the machine lacks the memory.

Target: graphfeat's peak RSS < 300 MB.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from _common import (  # noqa: E402
    ChildError, MiB, import_baseline, machine_note, mib, proc_kib_field, run_child, secs, table, verdict,
)

GiB = 1 << 30
CHANNELS = 4096
LAYERS = ["layer1", "layer2", "layer3", "layer4"]
TARGET_RSS = 300 * 10**6


def build(directory: Path, gib: float) -> tuple[Path, int, int]:
    """Write ``model.onnx`` + ``model.onnx.data`` with at least ``gib`` GiB of weights; return
    (path, weight bytes, node count). Tensor data is written once per tensor, never held whole."""
    import numpy as np
    from onnx import TensorProto, helper

    tensor_bytes = CHANNELS * CHANNELS * 4
    blocks_per_layer = max(1, int(np.ceil(gib * GiB / tensor_bytes / len(LAYERS))))
    block = np.random.default_rng(0).standard_normal(CHANNELS * CHANNELS).astype(np.float32)
    block *= np.float32(1.0 / np.sqrt(CHANNELS))
    payload = block.tobytes()
    del block
    nodes, inits = [], []
    x, offset = "input", 0
    data_name = "model.onnx.data"
    with open(directory / data_name, "wb") as data:
        for layer in LAYERS:
            for b in range(blocks_per_layer):
                name = f"{layer}.{b}.conv"
                w = TensorProto(name=f"{name}.weight", data_type=TensorProto.FLOAT, dims=[CHANNELS, CHANNELS, 1, 1])
                w.data_location = TensorProto.EXTERNAL
                for key, value in (("location", data_name), ("offset", str(offset)), ("length", str(tensor_bytes))):
                    entry = w.external_data.add()
                    entry.key, entry.value = key, value
                data.write(payload)
                offset += tensor_bytes
                inits.append(w)
                nodes.append(helper.make_node("Conv", [x, w.name], [f"/{name}/Conv_output_0"], name=f"/{name}/Conv",
                                              kernel_shape=[1, 1]))
                nodes.append(helper.make_node("Relu", nodes[-1].output, [f"/{name}/Relu_output_0"],
                                              name=f"/{name}/Relu"))
                x = nodes[-1].output[0]
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["/avgpool/output_0"], name="/avgpool/GlobalAveragePool"))
    nodes.append(helper.make_node("Flatten", ["/avgpool/output_0"], ["logits"], name="/flatten/Flatten"))
    graph = helper.make_graph(
        nodes, "big_synthetic", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, CHANNELS, 4, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, CHANNELS])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="bench")
    model.ir_version = 8
    path = directory / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path, offset, len(nodes)


# -- variants (child processes) ---------------------------------------------------
def v_graphfeat_cli(argv: list[str]) -> dict:
    import time

    from graphfeat.cli import main

    t0 = time.perf_counter()
    code = main(argv)
    if code != 0:
        raise SystemExit(f"graphfeat cut exited {code}")
    return {"seconds": time.perf_counter() - t0}


def v_extract(src: str, dst: str, inputs: list[str], outputs: list[str]) -> dict:
    import time

    import onnx.utils

    t0 = time.perf_counter()
    onnx.utils.extract_model(src, dst, inputs, outputs)
    return {"seconds": time.perf_counter() - t0}


def resolved_tensors(path: Path) -> list[str]:
    from graphfeat.graph import GraphIndex
    from graphfeat.onnxfile import load_model
    from graphfeat.resolve import Resolver

    resolver = Resolver(GraphIndex(load_model(path)))
    return [resolver.resolve(n).tensor for n in LAYERS]


def available_memory() -> int | None:
    try:
        import psutil

        return psutil.virtual_memory().available
    except ImportError:
        return proc_kib_field("/proc/meminfo", "MemAvailable")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=3.25, help="GiB of weights (default 3.25; must exceed 3 GB)")
    parser.add_argument("--tmp", default=None, help="parent directory of the temp dir (default: the system's)")
    parser.add_argument("--extract-limit-gib", type=float, default=12.0, help="address-space cap of extract_model")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per child run")
    parser.add_argument("--no-extract", action="store_true", help="skip onnx.utils.extract_model")
    parser.add_argument("--quick", action="store_true", default=True, help="one run per variant (the default)")
    args = parser.parse_args()

    weights = int(args.gib * GiB)
    parent = Path(args.tmp or tempfile.gettempdir())
    need = 2 * weights + 64 * MiB  # the model plus one output that copies the weights
    free = shutil.disk_usage(parent).free
    if free < 2 * need:
        print(f"refusing: {parent} has {free / GiB:.1f} GiB free; this bench needs {need / GiB:.1f} GiB at peak "
              f"and wants twice that free ({2 * need / GiB:.1f} GiB). Use --tmp DIR on a larger disk or a smaller --gib.",
              file=sys.stderr)
        return 2
    print(f"# big model ({machine_note()})\n", flush=True)
    baseline = import_baseline(["onnx", "graphfeat", "networkx", "numpy"])
    rows, notes = [], []
    with tempfile.TemporaryDirectory(prefix="graphfeat-big-", dir=parent) as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        src, nbytes, n_nodes = build(tmp, args.gib)
        print(f"built {src.name}: {n_nodes} nodes, {nbytes / GiB:.2f} GiB of external weights "
              f"({nbytes / 1e9:.2f} GB) in {time.perf_counter() - t0:.0f} s", flush=True)
        other = tmp / "out"
        other.mkdir()
        variants = [
            ("graphfeat cut, output beside the input (weights referenced)",
             ["cut", str(src), "--layers", *LAYERS, "-o", str(tmp / "cut.onnx")], tmp / "cut.onnx"),
            ("graphfeat cut, output in another directory (weights streamed)",
             ["cut", str(src), "--layers", *LAYERS, "-o", str(other / "cut.onnx")], other / "cut.onnx"),
        ]
        for label, argv, out in variants:
            try:
                r = run_child("big_model:v_graphfeat_cli", timeout=args.timeout, argv=argv)
                rows.append((label, r["seconds"], r["peak_rss"], _output_size(out)))
            except ChildError as exc:
                rows.append((label, None, None, None))
                notes.append(f"{label}: {exc}")
            print(f"  {label}: {secs(rows[-1][1])}, {mib(rows[-1][2])}", flush=True)
            for p in (out, out.with_name(out.name + ".data")):
                p.unlink(missing_ok=True)

        label = "onnx.utils.extract_model"
        avail = available_memory()
        cap = int(args.extract_limit_gib * GiB)
        if avail is not None:
            cap = min(cap, avail - 2 * GiB)
        if args.no_extract:
            notes.append(f"{label}: skipped (--no-extract)")
        else:
            src.unlink()  # the probe's data file goes where the big one was; disk stays at one model
            (tmp / "model.onnx.data").unlink()
            rows.extend(run_extract(tmp, args, cap, nbytes, notes))
    print(f"\n## {n_nodes} nodes, {nbytes / GiB:.2f} GiB ({nbytes / 1e9:.2f} GB) of external weights "
          f"(imports-only child: {mib(baseline)})\n")
    print(table(["variant", "wall", "peak RSS", "RSS / weights", "output (.onnx + .data)"],
                [[lbl, secs(s), mib(rss), "-" if rss is None else f"{rss / (PROBE_BYTES if 'probe' in lbl else nbytes):.3f}x",
                  mib(size)] for lbl, s, rss, size in rows]))
    for note in notes:
        print(f"\nnote: {note}")
    print("\n## Target\n")
    gf = [r for r in rows if r[0].startswith("graphfeat") and r[2] is not None]
    if gf:
        worst = max(r[2] for r in gf)
        print(f"- graphfeat cut peak RSS < 300 MB: {worst / 1e6:.0f} MB (worst of {len(gf)} variants) "
              f"-> {verdict(worst < TARGET_RSS)}")
    else:
        print("- graphfeat cut peak RSS < 300 MB: not measured")
    return 0


PROBE_BYTES = len(LAYERS) * CHANNELS * CHANNELS * 4  # one block per layer: 256 MiB
PROBE_GIB = PROBE_BYTES / GiB


def run_extract(tmp: Path, args, cap: int, nbytes: int, notes: list[str]) -> list[tuple]:
    """``extract_model`` first on a small probe model, then on the big one unless the probe's
    memory per weight byte says it would exceed ``cap``."""
    label = "onnx.utils.extract_model"
    rows = []
    probe_dir = tmp / "probe"
    probe_dir.mkdir()
    src, probe_bytes, _ = build(probe_dir, PROBE_GIB)
    out = probe_dir / "extract.onnx"
    try:
        r = run_child("big_model:v_extract", timeout=args.timeout, mem_limit=cap, src=str(src), dst=str(out),
                      inputs=["input"], outputs=resolved_tensors(src))
    except ChildError as exc:
        notes.append(f"{label} on the {probe_bytes / GiB:.2f} GiB probe: {exc}")
        return [(f"{label} ({probe_bytes / GiB:.2f} GiB probe model)", None, None, None)]
    rows.append((f"{label} ({probe_bytes / GiB:.2f} GiB probe model)", r["seconds"], r["peak_rss"], _output_size(out)))
    print(f"  {rows[-1][0]}: {secs(r['seconds'])}, {mib(r['peak_rss'])}", flush=True)
    shutil.rmtree(probe_dir)
    per_byte = r["peak_rss"] / probe_bytes
    predicted = per_byte * nbytes
    if predicted > cap:
        notes.append(f"{label} on the {nbytes / GiB:.2f} GiB model: not run. On the probe it peaked at "
                     f"{per_byte:.1f}x its weights, so it would need about {predicted / GiB:.1f} GiB here "
                     f"(> the {cap / GiB:.1f} GiB cap: --extract-limit-gib, or free memory - 2 GiB) and about "
                     f"{r['seconds'] * nbytes / probe_bytes / 60:.0f} min")
        rows.append((f"{label} (full model)", None, None, None))
        return rows
    src, _, _ = build(tmp, args.gib)
    out = tmp / "out" / "extract.onnx"
    try:
        r = run_child("big_model:v_extract", timeout=args.timeout, mem_limit=cap, src=str(src), dst=str(out),
                      inputs=["input"], outputs=resolved_tensors(src))
        rows.append((f"{label} (full model)", r["seconds"], r["peak_rss"], _output_size(out)))
    except ChildError as exc:
        rows.append((f"{label} (full model)", None, None, None))
        notes.append(f"{label} (address space capped at {cap / GiB:.1f} GiB, timeout {args.timeout:.0f} s): {exc}")
    print(f"  {rows[-1][0]}: {secs(rows[-1][1])}, {mib(rows[-1][2])}", flush=True)
    return rows


def _output_size(out: Path) -> int | None:
    if not out.exists():
        return None
    data = out.with_name(out.name + ".data")
    return out.stat().st_size + (data.stat().st_size if data.exists() else 0)


if __name__ == "__main__":
    sys.exit(main())
