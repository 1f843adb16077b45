"""Seeded mutations of real-looking ONNX models, and one fuzz case that runs graphfeat on each.

A *case* takes a seed model (the hand-built backbones of :mod:`onnx_fixtures` in
several naming styles, with and without graphfeat metadata or external data,
plus a graph with an ``If`` on the feature path), applies one to three
mutations (flip bytes, truncate, delete nodes, rename tensors, point external
data at hostile paths, shuffle nodes, duplicate outputs, drop initializers,
corrupt the metadata JSON, add a cycle, unknown ops, odd names) and runs
``graphfeat info`` and ``graphfeat cut`` on the file (Python API, some through
the CLI's ``main``).

The contract checked: every call either succeeds with a checker-valid result
or raises :class:`graphfeat.GraphfeatError` (CLI: exit 2, no traceback); any
other exception is a crash. The input's bytes and mtime never change and no
file other than the requested output appears in the case directory.
"""
from __future__ import annotations

import contextlib
import io
import os
import random
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnx_fixtures  # noqa: F401  (first: puts the repository root on sys.path)
from onnx import TensorProto, helper, numpy_helper
from onnx_fixtures import add_metadata, features_like, hrnet_like, resnet_like

import graphfeat
from graphfeat.onnxfile.tensors import external_tensors
from graphfeat.cli import main
from graphfeat.levels import METADATA_KEY, PARTIAL_KEY


# -- seed models ------------------------------------------------------------------
@dataclass
class Seed:
    name: str
    model: onnx.ModelProto
    names: list[str]  # layer names worth asking for
    external: bool = False


def _if_model() -> tuple[onnx.ModelProto, list[str]]:
    """``stem`` -> ``If`` (both branches read ``stem``'s output from the outer scope) -> ``body``."""
    rng = np.random.default_rng(3)
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])
    inits = [
        numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "stem.conv.weight"),
        numpy_helper.from_array(rng.normal(size=(4, 4, 1, 1)).astype(np.float32), "body.conv.weight"),
        numpy_helper.from_array(np.array(True), "flag"),
    ]
    out_t = helper.make_tensor_value_info("branch", TensorProto.FLOAT, [1, 4, 8, 8])
    then_g = helper.make_graph([helper.make_node("Relu", ["s"], ["branch"], name="then_relu")], "then", [], [out_t])
    else_g = helper.make_graph([helper.make_node("Sigmoid", ["s"], ["branch"], name="else_sig")], "else", [], [out_t])
    nodes = [
        helper.make_node("Conv", ["images", "stem.conv.weight"], ["s"], pads=[1, 1, 1, 1], name="1Conv"),
        helper.make_node("If", ["flag"], ["b"], then_branch=then_g, else_branch=else_g, name="2If"),
        helper.make_node("Conv", ["b", "body.conv.weight"], ["y"], name="3Conv"),
        helper.make_node("Relu", ["y"], ["out"], name="4Relu"),
    ]
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, 8, 8])
    graph = helper.make_graph(nodes, "if_net", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model, ["stem", "body", "stem.conv", "body.conv"]


def _loop_model() -> tuple[onnx.ModelProto, list[str]]:
    """A ``Loop`` whose body reads the outer ``stem`` tensor and accumulates it twice."""
    rng = np.random.default_rng(4)
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])
    inits = [
        numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "stem.conv.weight"),
        numpy_helper.from_array(np.array(2, np.int64), "trips"),
        numpy_helper.from_array(np.array(True), "cond"),
    ]
    f4 = [1, 4, 8, 8]
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["c_in"], ["c_out"]),
            helper.make_node("Add", ["acc_in", "s"], ["acc_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("c_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, f4),
        ],
        [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []), helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, f4)],
    )
    nodes = [
        helper.make_node("Conv", ["images", "stem.conv.weight"], ["s"], pads=[1, 1, 1, 1], name="1Conv"),
        helper.make_node("Loop", ["trips", "cond", "s"], ["acc"], body=body, name="2Loop"),
        helper.make_node("Relu", ["acc"], ["out"], name="3Relu"),
    ]
    graph = helper.make_graph(nodes, "loop_net", [x], [helper.make_tensor_value_info("out", TensorProto.FLOAT, f4)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model, ["stem", "stem.conv"]


def _with_metadata(model: onnx.ModelProto, truth: dict[str, str]) -> onnx.ModelProto:
    chs = {"layer1": 8, "layer2": 16, "layer3": 24, "layer4": 32}
    return add_metadata(model, [(n, truth[n], chs[n], 2 ** (i + 2)) for i, n in enumerate(chs)])


_SEEDS: list[Seed] | None = None


def seeds() -> list[Seed]:
    """The seed models (built once per process)."""
    global _SEEDS
    if _SEEDS is None:
        out = []
        for style in ("mindspore", "torchscript", "dynamo"):
            model, truth = resnet_like(style)
            out.append(Seed(f"resnet_{style}", model, list(truth)))
        model, truth = resnet_like("plain")
        out.append(Seed("resnet_plain_meta", _with_metadata(model, truth), ["layer1", "layer2", "layer3", "layer4"]))
        model, truth = resnet_like("mindspore")
        out.append(Seed("resnet_external", _with_metadata(model, truth), list(truth), external=True))
        model, truth = features_like("namespace")
        out.append(Seed("features_namespace", model, list(truth)))
        model, truth = hrnet_like("torchscript")
        out.append(Seed("hrnet_torchscript", model, list(truth)))
        out.append(Seed("if_subgraph", *_if_model()))
        out.append(Seed("loop_subgraph", *_loop_model()))
        _SEEDS = out
    return _SEEDS


# -- mutations ----------------------------------------------------------------------
ODD_NAMES = [
    "", " ", "layer1 ", "a\x00b", "../x", "layer1/../..", "layer1.", ".layer1", "..", "Ω層", "\u202elayer1",
    "x" * 5000, "layer1\nlayer2", "'; rm -rf /", "%s%n", "\\\\server\\share", "C:\\x", "-o", "--force",
]  # fmt: skip

HOSTILE_LOCATIONS = [
    "../outside.data", "a/../../outside.data", "sub/../../outside.data", "./../outside.data", "/etc/passwd",
    "..\\outside.data", "sub\\..\\..\\outside.data", "C:\\Windows\\win.ini", "C:outside.data", "\\\\host\\share\\x",
    "x\x00.data", "", ".", "sub/", "sub", "link.data", "linkdir/w.data", "hard.data", "fifo.data", "nope.data",
    "w.data/x", "dev.data", "x" * 300, "sub/" * 40 + "w.data", "w.data\n", "~/w.data", "%2e%2e/outside.data",
    "\u2025/outside.data", "w.data ", "W.DATA",
]  # fmt: skip

BAD_EXTERNAL_ENTRIES = [
    [("location", "w.data"), ("location", "../outside.data")],
    [("location", "../outside.data"), ("location", "w.data")],
    [("location", "w.data"), ("offset", "abc")],
    [("location", "w.data"), ("offset", "-1")],
    [("location", "w.data"), ("length", "-4")],
    [("location", "w.data"), ("offset", " 0")],
    [("location", "w.data"), ("offset", "0x10")],
    [("location", "w.data"), ("offset", "1_0")],
    [("location", "w.data"), ("offset", "\u0661")],
    [("location", "w.data"), ("length", "9" * 5000)],
    [("location", "w.data"), ("length", "99999999999999999999")],
    [("location", "w.data"), ("offset", "0"), ("offset", "4")],
    [("location", "w.data"), ("checksum", "deadbeef")],
    [("location", "w.data"), ("basepath", "/etc")],
    [("location", "w.data"), ("__class__", "x")],
    [("location", "w.data"), ("", "")],
    [("offset", "0"), ("length", "4")],
    [],
]  # fmt: skip

BAD_METADATA = [
    "{", "[]", "null", "1", '"x"', "{}", '{"levels": 3}', '{"levels": [1]}', '{"levels": [{"tensor": 3}]}',
    '{"levels": [{"name": "a", "tensor": "nope", "chs": 1, "reduction": 1}]}',
    '{"levels": [{"name": "a", "tensor": "images", "chs": 1, "reduction": 1}]}',
    '{"levels": [{"name": "a", "tensor": "%T", "chs": -1, "reduction": 1}]}',
    ('{"levels": [{"name": "a", "tensor": "%T", "chs": 1, "reduction": 1, "index": "x"}, '
     '{"name": "b", "tensor": "%T2", "chs": 1, "reduction": 2, "index": 0}]}'),
    '{"levels": [{"name": "a", "tensor": "%T", "chs": 1, "reduction": 1}, {"name": "a", "tensor": "%T2", "chs": 1, "reduction": 2}]}',
    '{"levels": [{"name": "a", "tensor": "%T", "chs": 1e999, "reduction": NaN}]}',
    '{"levels": [{"name": "", "tensor": "%T", "chs": 1, "reduction": 1}]}',
    '{"levels": [], "input": 5}',
    '{"levels": [{"name": "a", "tensor": "%T", "chs": 1, "reduction": 1}], "input": {"name": 3}}',
    "[" * 100000 + "]" * 100000,
    '{"levels": [], "x": ' + "9" * 5000 + "}",
    "\uffff\u0000",
]  # fmt: skip


def _tensor_names(model: onnx.ModelProto) -> list[str]:
    return [o for n in model.graph.node for o in n.output if o]


MILD = ["none", "shuffle_nodes", "odd_node_names", "rename_consistently", "duplicate_output", "bad_scopes"]


def _proto_mutation(rng: random.Random, model: onnx.ModelProto, kind: str | None = None) -> str:
    """Apply one structural mutation to ``model`` in place; return its name."""
    g = model.graph
    kind = kind or rng.choice(
        ["delete_node", "rename_tensor", "rename_consistently", "shuffle_nodes", "duplicate_output", "duplicate_writer",
         "drop_initializer", "corrupt_metadata", "cycle", "unknown_op", "dangling_input", "drop_outputs",
         "odd_node_names", "clear_types", "swap_inputs", "bad_attribute", "drop_opset", "bad_scopes"]
    )  # fmt: skip
    nodes = g.node
    if not nodes:
        return "noop"
    k = rng.randrange(len(nodes))
    node = nodes[k]
    if kind == "delete_node":
        for _ in range(rng.randint(1, 3)):
            if len(g.node) > 1:
                del g.node[rng.randrange(len(g.node))]
    elif kind == "rename_tensor" and node.output:
        node.output[0] = rng.choice(ODD_NAMES[:12] + ["renamed"])
    elif kind == "rename_consistently" and node.output:
        old, new = node.output[0], rng.choice(ODD_NAMES[1:12] + ["layer1", "images", "renamed"])
        for n in g.node:
            for i, name in enumerate(n.input):
                if name == old:
                    n.input[i] = new
            for i, name in enumerate(n.output):
                if name == old:
                    n.output[i] = new
        for o in g.output:
            if o.name == old:
                o.name = new
    elif kind == "shuffle_nodes":
        items = list(g.node)
        copies = [onnx.NodeProto() for _ in items]
        for c, n in zip(copies, items):
            c.CopyFrom(n)
        rng.shuffle(copies)
        del g.node[:]
        g.node.extend(copies)
    elif kind == "duplicate_output" and g.output:
        g.output.append(g.output[rng.randrange(len(g.output))])
        if rng.random() < 0.5:
            g.output.add().name = rng.choice(_tensor_names(model) or ["x"])
    elif kind == "duplicate_writer" and len(nodes) > 1:
        other = nodes[rng.randrange(len(nodes))]
        if other.output and node.output:
            node.output[0] = other.output[0]
    elif kind == "drop_initializer" and g.initializer:
        for _ in range(rng.randint(1, 3)):
            if g.initializer:
                del g.initializer[rng.randrange(len(g.initializer))]
    elif kind == "corrupt_metadata":
        names = _tensor_names(model) or ["x"]
        value = rng.choice(BAD_METADATA).replace("%T2", rng.choice(names)).replace("%T", rng.choice(names))
        key = rng.choice([METADATA_KEY, METADATA_KEY, PARTIAL_KEY])
        entry = next((p for p in model.metadata_props if p.key == key), None) or model.metadata_props.add(key=key)
        entry.value = value
    elif kind == "cycle" and len(nodes) > 2:
        j = rng.randrange(k, len(nodes))
        if nodes[j].output and node.input:
            node.input[0] = nodes[j].output[0]
    elif kind == "unknown_op":
        node.op_type = rng.choice(["FooBar", "", "Conv2", "conv", "If", "Loop", "Constant"])
        if rng.random() < 0.3:
            node.domain = rng.choice(["evil.domain", "ai.onnx.ml", "com.microsoft", "\x00"])
    elif kind == "dangling_input":
        node.input.append("never_written") if rng.random() < 0.5 else (node.input.__setitem__(0, "never_written") if node.input else None)
    elif kind == "drop_outputs":
        del g.output[:]
    elif kind == "odd_node_names":
        for n in g.node:
            if rng.random() < 0.3:
                n.name = rng.choice(ODD_NAMES)
    elif kind == "clear_types":
        for vi in (*g.input, *g.output):
            vi.ClearField("type")
    elif kind == "swap_inputs" and len(node.input) > 1:
        node.input[0], node.input[1] = node.input[1], node.input[0]
    elif kind == "bad_attribute":
        node.attribute.add(name=rng.choice(["kernel_shape", "then_branch", "body", "x"]), type=rng.choice([1, 2, 5, 7, 10, 11]))
    elif kind == "drop_opset":
        if rng.random() < 0.5 or not model.opset_import:
            del model.opset_import[:]
        else:
            model.opset_import[0].version = rng.choice([0, 1, 7, 99, -1])
    elif kind == "bad_scopes":
        for n in g.node:
            if rng.random() < 0.3:
                n.metadata_props.add(key=rng.choice(["pkg.torch.onnx.name_scopes", "namespace"]),
                                     value=rng.choice(["[", "['', 1, None]", "((((", "a/b/c", "" , "x" * 3000, "[" * 5000]))  # fmt: skip
    return kind


def _set_external(rng: random.Random, model: onnx.ModelProto) -> str:
    """Point one or all external tensors at a hostile location or malformed entries."""
    tensors = external_tensors(model)
    if not tensors:
        return "noop"
    targets = tensors if rng.random() < 0.5 else [rng.choice(tensors)]
    if rng.random() < 0.6:
        location = rng.choice(HOSTILE_LOCATIONS)
        for t in targets:
            for e in t.external_data:
                if e.key == "location":
                    e.value = location
        return f"location {location[:40]!r}"
    entries = rng.choice(BAD_EXTERNAL_ENTRIES)
    for t in targets:
        keep_offset = [(e.key, e.value) for e in t.external_data if e.key in ("offset", "length")]
        del t.external_data[:]
        for key, value in entries + ([] if any(k in ("offset", "length") for k, _ in entries) else keep_offset):
            t.external_data.add(key=key, value=value.replace("w.data", "m.onnx.data"))
    return f"entries {entries[:2]}"


def _byte_mutation(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    kind = rng.choice(["flip", "truncate", "splice", "zero_run"])
    buf = bytearray(data)
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        del buf[rng.randrange(len(buf)):]
    elif kind == "splice":
        i, j = sorted(rng.randrange(len(buf)) for _ in range(2))
        buf[i:i] = buf[j : j + rng.randint(1, 64)]
    else:
        i = rng.randrange(len(buf))
        buf[i : i + rng.randint(1, 32)] = bytes(rng.randint(1, 32))
    return bytes(buf), kind


def _make_hostile_files(case: Path, outside: Path) -> None:
    """Files a hostile location may name: symlinks, a hardlink, a FIFO, a directory."""
    data = case / "m.onnx.data"
    payload = data.read_bytes() if data.exists() else bytes(1 << 16)
    (outside / "outside.data").write_bytes(payload)
    (case / "sub").mkdir(exist_ok=True)
    (case / "link.data").symlink_to(outside / "outside.data")
    (case / "linkdir").symlink_to(outside)
    (outside / "w.data").write_bytes(payload)
    os.link(outside / "outside.data", case / "hard.data")
    os.mkfifo(case / "fifo.data")
    (case / "dev.data").symlink_to("/dev/zero")


# -- one case ---------------------------------------------------------------------------
@dataclass
class Stats:
    cases: int = 0
    successes: int = 0  # cases where at least one cut succeeded
    clean_errors: int = 0  # GraphfeatError raised (counted per call)
    calls: int = 0
    crashes: list[str] = field(default_factory=list)
    mutations: Counter = field(default_factory=Counter)

    def summary(self) -> dict:
        return {
            "cases": self.cases,
            "calls": self.calls,
            "successes": self.successes,
            "clean_errors": self.clean_errors,
            "crashes": len(self.crashes),
        }


class Crash(AssertionError):
    """A fuzz case broke graphfeat's contract."""


def _request(rng: random.Random, seed: Seed, model: onnx.ModelProto | None) -> dict:
    r = rng.random()
    if r < 0.6:
        pool = seed.names + ["layer1", "layer4"]
        names = rng.sample(pool, k=min(len(pool), rng.randint(1, 3)))
        if rng.random() < 0.15:
            names.append(rng.choice(ODD_NAMES))
        if rng.random() < 0.05:
            names = []
        return {"layers": names}
    if r < 0.8:
        return {"indices": rng.choice([[0], [-1], [0, 1], [1, 0], [], [99], [-99], [0, 0]])}
    tensors = _tensor_names(model) if model is not None else []
    picks = rng.sample(tensors, k=min(len(tensors), rng.randint(1, 2))) if tensors else ["x"]
    if rng.random() < 0.2:
        picks.append(rng.choice(ODD_NAMES + ["images"]))
    return {"tensors": picks}


def _listing(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*")}


def _guard(what: str, fn):
    """Run ``fn``; return ('ok', value) or ('error', exc) for a GraphfeatError; raise Crash otherwise."""
    try:
        return "ok", fn()
    except graphfeat.GraphfeatError as exc:
        return "error", exc
    except Exception as exc:
        raise Crash(f"{what}: {type(exc).__name__}: {exc!s:.300}") from exc


def run_case(case_seed: int, workdir: Path, stats: Stats, use_cli: bool | None = None) -> None:
    """Build, mutate and run one case in a fresh directory under ``workdir``; update ``stats``."""
    rng = random.Random(case_seed)
    seed = rng.choice(seeds())
    case = workdir / f"case{case_seed}"
    outside = workdir / f"outside{case_seed}"
    case.mkdir()
    outside.mkdir()
    try:
        model = onnx.ModelProto()
        model.CopyFrom(seed.model)
        path = case / "m.onnx"
        applied = []
        if seed.external:
            onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                      location="m.onnx.data", size_threshold=0)  # fmt: skip
            model = onnx.load(path, load_external_data=False)
        _make_hostile_files(case, outside)
        mild = rng.random() < 0.3  # a third of the cases: benign edits that should still cut
        for _ in range(0 if mild else rng.randint(1, 3)):
            r = rng.random()
            if seed.external and r < 0.5:
                applied.append(_set_external(rng, model))
            elif r < 0.85:
                applied.append(_proto_mutation(rng, model))
        if mild:
            applied.append(_proto_mutation(rng, model, rng.choice(MILD)))
        data = model.SerializeToString()
        if not mild and (rng.random() < 0.3 or not applied):
            data, kind = _byte_mutation(rng, data)
            applied.append(kind)
        path.write_bytes(data)
        stats.mutations.update(a.split()[0] for a in applied)
        parsed = None
        with contextlib.suppress(Exception):
            parsed = onnx.ModelProto.FromString(data)
        request = _request(rng, seed, parsed)
        before = _listing(case)
        st = path.stat()
        label = f"case {case_seed} seed={seed.name} mutations={applied} request={request!r:.200}"

        def unchanged(extra: set[str] = frozenset()) -> None:
            if path.read_bytes() != data or path.stat().st_mtime_ns != st.st_mtime_ns:
                raise Crash(f"{label}: the input was modified")
            stray = _listing(case) - before - set(extra)
            if stray:
                raise Crash(f"{label}: stray files {sorted(stray)}")

        ok = False
        stats.calls += 3
        status, _ = _guard(f"{label} info", lambda: graphfeat.feature_levels(path))
        stats.clean_errors += status == "error"
        unchanged()
        out = case / "out.onnx"
        status, _ = _guard(f"{label} cut_file", lambda: graphfeat.cut_file(path, out, **request))
        if status == "ok":
            ok = True
            _guard_valid(label, lambda: onnx.checker.check_model(str(out), full_check=True))
            expected = {"out.onnx"} | ({"out.onnx.data"} if (case / "out.onnx.data").exists() else set())
            unchanged(expected)
            out.unlink()
            (case / "out.onnx.data").unlink(missing_ok=True)
        else:
            stats.clean_errors += 1
            unchanged()
        status, result = _guard(f"{label} cut", lambda: graphfeat.cut(path, **request))
        if status == "ok":
            ok = True
            _guard_valid(label, lambda: onnx.checker.check_model(result, full_check=True))
        else:
            stats.clean_errors += 1
        unchanged()
        if parsed is not None and rng.random() < 0.3:  # the in-memory API on the same model
            stats.calls += 2
            for what, fn in (("feature_levels(proto)", lambda: graphfeat.feature_levels(parsed)),
                             ("cut(proto)", lambda: graphfeat.cut(parsed, **request))):  # fmt: skip
                status, result = _guard(f"{label} {what}", fn)
                stats.clean_errors += status == "error"
                if status == "ok" and what == "cut(proto)" and not external_tensors(result):
                    _guard_valid(label, lambda m=result: onnx.checker.check_model(m, full_check=True))
            unchanged()
        if use_cli if use_cli is not None else rng.random() < 0.1:
            (kind, values), = request.items()
            argv = ["cut", str(path), f"--{kind}", *[str(v) for v in values], "-o", str(out)]
            stats.calls += 2
            for args in (["info", str(path), "--json"], argv):
                err = io.StringIO()
                try:
                    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                        code = main(args)
                except SystemExit as exc:  # argparse rejecting an odd argument is a clean exit 2
                    code = exc.code
                except Exception as exc:
                    raise Crash(f"{label} CLI {args[0]}: {type(exc).__name__}: {exc!s:.300}") from exc
                if code not in (0, 2) or "Traceback" in err.getvalue():
                    raise Crash(f"{label} CLI {args[0]}: exit {code}: {err.getvalue()[-300:]}")
                stats.clean_errors += code == 2
            unchanged({"out.onnx", "out.onnx.data"})
        stats.successes += ok
    except Crash as exc:
        stats.crashes.append(str(exc))
    finally:
        stats.cases += 1
        shutil.rmtree(case, ignore_errors=True)
        shutil.rmtree(outside, ignore_errors=True)


def _guard_valid(label: str, fn) -> None:
    try:
        fn()
    except Exception as exc:
        raise Crash(f"{label}: graphfeat succeeded but the result is not checker-valid: {exc!s:.300}") from exc


def run(n: int, workdir: Path, start: int = 0, use_cli: bool | None = None) -> Stats:
    """Run ``n`` cases with seeds ``start..start+n-1`` in ``workdir``."""
    stats = Stats()
    for s in range(start, start + n):
        run_case(s, workdir, stats, use_cli)
    return stats


def timed_run(n: int, workdir: Path, start: int = 0) -> tuple[Stats, float]:
    t0 = time.perf_counter()
    stats = run(n, workdir, start)
    return stats, time.perf_counter() - t0


__all__ = ["Crash", "Seed", "Stats", "run", "run_case", "seeds", "timed_run"]
