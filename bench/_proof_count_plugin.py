"""pytest plugin (and subprocess bootstrap) of ``bench/proof_count.py``: which level comparisons ran and passed.

Loaded into a test run with ``-p _proof_count_plugin``, and into every Python
process the run starts (export workers, ``python -m graphfeat verify``, the
pytest-xdist workers) by a generated ``sitecustomize.py``; both only act when
``GRAPHFEAT_PROOF_DIR`` names the directory the records go to. Nothing in the
tree under test is edited: functions are wrapped when their module is first
imported (a ``sys.meta_path`` finder wraps the module's loader), so an old
commit's tests need no change.

How a comparison is identified:

* **Provenance tags on arrays.** Every array a runtime hands back is tagged
  with the runtime that made it, and, where the ONNX file carries graphfeat's
  ``graphfeat.feature_info`` record, with its model name and level name
  (ONNX Runtime's ``InferenceSession.run``; graphfeat's ``session()`` for
  ONNX Runtime, OpenVINO and ``onnx.reference``). MindSpore's
  ``Tensor.asnumpy`` tags ``mindspore`` and the execution mode (GRAPH_MODE or
  PYNATIVE); the outputs of a feature model made by ``exporters.create_model``
  also get its model and level names. A ``level/NAME`` array read from an
  ``.npz`` (the export's MindSpore reference) is tagged ``mindspore`` with its
  level. Views keep their base's tag; copies (``np.concatenate``,
  ``astype``) lose it.
* **Wrapped comparisons.** ``compare_level`` (``graphfeat.proof`` in round 1,
  ``graphfeat.runtime.compare`` now; passes when its metrics say ``ok``), the
  tests' ``conftest.assert_close_rel``, ``numpy.testing.assert_allclose`` /
  ``assert_array_equal`` / ``assert_array_almost_equal`` and the toolchain
  matrix's ``compare`` (passes at ``err <= limit(tool)``) pass when they return
  without raising. A passing comparison is recorded with both sides' tags.
* **Scopes.** ``export_model`` (the export's own proof: each level's ONNX
  tensor matched against MindSpore on ONNX Runtime) records one
  ``onnxruntime`` comparison per level of the report it returns, and nothing
  of its inner candidate search; one that raises records nothing.
  ``verify_runtimes`` keeps its inner comparisons only when it returns, and
  says what the reference is (MindSpore for ``model=``/``reference=``, the
  original file on ONNX Runtime for ``against=``) when a copy lost the tag.

Each process writes JSON lines to ``GRAPHFEAT_PROOF_DIR/PID-START.jsonl``:
``proc`` (its ancestors), ``cmp`` (one passing comparison, with a wall-clock
time) and, in a pytest process, ``test`` (a test's time window and whether
it passed). ``proof_count.py`` gives a comparison to the test whose window, in
the comparison's own process or its nearest ancestor, holds its time.

PYTEST_DONT_REWRITE: ``sitecustomize`` imports this module before pytest could rewrite it.
"""
from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import inspect
import json
import os
import sys
import threading
import time
import weakref
from typing import Any, Callable

ENV_DIR = "GRAPHFEAT_PROOF_DIR"
METADATA_KEY = "graphfeat.feature_info"
ONNX_RUNTIMES = ("onnxruntime", "openvino", "onnx.reference")
_RUNTIME_NAMES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "reference": "onnx.reference"}

_lock = threading.RLock()
_local = threading.local()
_installed = False


# -- process identity and the record file ---------------------------------------------------------------
def _stat(pid: int | str) -> tuple[int, int] | None:
    """``(ppid, start time in clock ticks)`` of a process, from /proc (None if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[1]), int(rest[19])
    except (OSError, IndexError, ValueError):
        return None


def _key(pid: int) -> list[int] | None:
    st = _stat(pid)
    return None if st is None else [pid, st[1]]


def _ancestors() -> list[list[int]]:
    """``[pid, start]`` of each ancestor of this process, nearest first."""
    out, pid = [], os.getpid()
    for _ in range(64):
        st = _stat(pid)
        if st is None or st[0] <= 1:
            break
        pid = st[0]
        key = _key(pid)
        if key is None:
            break
        out.append(key)
    return out


class _Sink:
    """This process's record file, opened at the first record (again after a fork)."""

    def __init__(self) -> None:
        self.pid = -1
        self.file = None
        self.me: list[int] = []

    def write(self, rec: dict) -> None:
        directory = os.environ.get(ENV_DIR)
        if not directory:
            return
        with _lock:
            if self.pid != os.getpid():
                self.pid = os.getpid()
                self.me = _key(self.pid) or [self.pid, 0]
                self.file = open(os.path.join(directory, f"{self.me[0]}-{self.me[1]}.jsonl"), "a")
                self._line({"type": "proc", "key": self.me, "anc": _ancestors(), "argv": sys.argv[:4]})
            self._line({**rec, "key": self.me})

    def _line(self, rec: dict) -> None:
        self.file.write(json.dumps(rec, default=str) + "\n")
        self.file.flush()


_sink = _Sink()


# -- provenance tags ---------------------------------------------------------------------------------------
_TAGS: dict[int, tuple[weakref.ref, dict]] = {}


def _drop(key: int, ref: weakref.ref) -> None:
    entry = _TAGS.get(key)
    if entry is not None and entry[0] is ref:
        del _TAGS[key]


def tag(arr: Any, **info: Any) -> None:
    """Remember where the numpy array ``arr`` came from (runtime, model, level, mode, src)."""
    np = sys.modules.get("numpy")
    if np is None or not isinstance(arr, np.ndarray):
        return
    key = id(arr)
    try:
        ref = weakref.ref(arr, lambda r, k=key: _drop(k, r))
    except TypeError:
        return
    _TAGS[key] = (ref, {k: v for k, v in info.items() if v is not None})


def tag_of(arr: Any) -> dict | None:
    """The tag of ``arr`` or of the array it is a view of."""
    for _ in range(8):
        if arr is None:
            return None
        entry = _TAGS.get(id(arr))
        if entry is not None and entry[0]() is arr:
            return entry[1]
        arr = getattr(arr, "base", None)
    return None


def _record_of(props: Any) -> dict | None:
    """graphfeat's record from ONNX ``metadata_props`` (a proto list or an ORT ``custom_metadata_map``)."""
    try:
        if isinstance(props, dict):
            value = props.get(METADATA_KEY)
        else:
            value = next((p.value for p in props if p.key == METADATA_KEY), None)
        return json.loads(value) if value else None
    except Exception:
        return None


def _level_map(record: dict | None) -> tuple[str | None, dict[str, str]]:
    """``(model, {tensor: level})``; a ``--strides`` level stands for the layer it names."""
    if not record:
        return None, {}
    levels = {}
    for lv in record.get("levels") or []:
        if isinstance(lv, dict) and lv.get("tensor"):
            levels[lv["tensor"]] = lv.get("layer") or lv.get("name")
    return record.get("model"), levels


def _tag_outputs(outputs: dict, runtime: str, record: dict | None) -> dict:
    model, levels = _level_map(record)
    try:
        for name, value in outputs.items():
            tag(value, rt=runtime, model=model, level=levels.get(name), tensor=name)
    except Exception:
        pass
    return outputs


def _ms_mode() -> str | None:
    ms = sys.modules.get("mindspore")
    try:
        return "graph" if ms.get_context("mode") == ms.GRAPH_MODE else "pynative"
    except Exception:
        return None


# -- recording -------------------------------------------------------------------------------------------
def _scopes() -> list[dict]:
    stack = getattr(_local, "scopes", None)
    if stack is None:
        stack = _local.scopes = []
    return stack


def _emit(rec: dict) -> None:
    stack = _scopes()
    if stack:
        stack[-1]["buf"].append(rec)
    else:
        _sink.write(rec)


def _context() -> dict:
    for scope in reversed(_scopes()):
        if scope.get("ctx"):
            return scope["ctx"]
    return {}


def classify(ta: dict | None, te: dict | None, ctx_ref: str | None = None) -> tuple[str, str | None, dict]:
    """``(runtime label, MindSpore side's mode, the reference side's tag)`` of a comparison of tagged sides
    ``ta`` and ``te``.

    An ONNX runtime against MindSpore (live or its npz) is that runtime; MindSpore against MindSpore is
    ``mindspore-graph`` when one side ran in GRAPH_MODE and the other eagerly, else ``mindspore-internal``;
    two ONNX runtimes are ``onnx-internal``; anything else is ``untagged``."""
    ta, te = ta or {}, te or {}
    ra, re_ = ta.get("rt"), te.get("rt")
    if re_ is None and ctx_ref:
        re_, te = ctx_ref, {"rt": ctx_ref, "mode": "ctx"}
    if ra in ONNX_RUNTIMES and re_ == "mindspore":
        return ra, te.get("mode") or te.get("src"), te
    if re_ in ONNX_RUNTIMES and ra == "mindspore":
        return re_, ta.get("mode") or ta.get("src"), ta
    if ra == re_ == "mindspore":
        modes = {ta.get("mode") or ta.get("src"), te.get("mode") or te.get("src")}
        label = "mindspore-graph" if modes == {"graph", "pynative"} else "mindspore-internal"
        return label, "/".join(sorted(str(m) for m in modes)), te
    if ra in ONNX_RUNTIMES and re_ in ONNX_RUNTIMES:
        return "onnx-internal", None, te
    return f"untagged:{ra or '-'}~{re_ or '-'}", None, te


_untagged = [0]


def note(via: str, actual: Any, expected: Any, ok: bool, hint: str = "", level: str | None = None) -> None:
    """Record one comparison that passed (``ok``); failed ones are not recorded."""
    if not ok:
        return
    try:
        ta, te = tag_of(actual), tag_of(expected)
        if ta is None and te is None and not hint and level is None:
            _untagged[0] += 1
            return
        ctx = _context()
        runtime, mode, ref = classify(ta, te, ctx.get("ref"))
        ta, te = ta or {}, te or {}
        other = ta if ref is not ta else te
        _emit({"type": "cmp", "t": time.time(), "via": via, "runtime": runtime, "ms_mode": mode,
               "model": ta.get("model") or te.get("model") or ctx.get("model"),
               # the reference names the model's level; a cut's output may be an alias (``stride8``)
               "level": ref.get("level") or other.get("level") or level,
               "hint": str(hint)[:200]})
    except Exception as exc:  # the count must never change a test's outcome
        _emit({"type": "error", "t": time.time(), "where": via, "error": repr(exc)[:200]})


# -- wrappers --------------------------------------------------------------------------------------------
def _marked(fn: Callable) -> bool:
    return getattr(fn, "_proof_count_wrapped", False)


def _mark(wrapper: Callable) -> Callable:
    wrapper._proof_count_wrapped = True
    return wrapper


def wrap_compare_level(orig: Callable) -> Callable:
    @functools.wraps(orig)
    def compare_level(name, actual, expected, *args, **kwargs):
        metrics = orig(name, actual, expected, *args, **kwargs)
        note("compare_level", actual, expected, bool(getattr(metrics, "ok", False)), hint=str(name), level=str(name))
        return metrics
    return _mark(compare_level)


def wrap_asserting(orig: Callable, via: str, hint_arg: str) -> Callable:
    """An ``assert_*(actual, expected, ...)`` that passes by returning; ``hint_arg`` names its message."""
    try:
        sig = inspect.signature(orig)
    except (TypeError, ValueError):
        sig = None

    @functools.wraps(orig)
    def asserting(actual, expected, *args, **kwargs):
        result = orig(actual, expected, *args, **kwargs)
        hint = kwargs.get(hint_arg, "")
        if not hint and args and sig is not None:
            try:
                hint = sig.bind(actual, expected, *args, **kwargs).arguments.get(hint_arg, "")
            except TypeError:
                hint = ""
        note(via, actual, expected, True, hint=str(hint or ""))
        return result
    return _mark(asserting)


def wrap_export(orig: Callable) -> Callable:
    """``export_model``: on return, one ONNX Runtime vs MindSpore record per level of its report."""
    @functools.wraps(orig)
    def export_model(*args, **kwargs):
        scope = {"buf": []}
        _scopes().append(scope)
        try:
            report = orig(*args, **kwargs)
        finally:
            _scopes().pop()
        modes = {r.get("level"): r.get("ms_mode") for r in scope["buf"] if r.get("runtime") == "onnxruntime"}
        name = getattr(report, "model", None) or (args[0] if args and isinstance(args[0], str) else None)
        for lv in getattr(report, "levels", None) or []:
            level = lv.get("layer") or lv.get("name") if isinstance(lv, dict) else None
            _emit({"type": "cmp", "t": time.time(), "via": "export_model", "runtime": "onnxruntime",
                   "ms_mode": modes.get(level), "model": name, "level": level, "hint": ""})
        return report
    return _mark(export_model)


def wrap_verify(orig: Callable) -> Callable:
    """``verify_runtimes``: its inner comparisons count when it returns; it says what the reference is."""
    @functools.wraps(orig)
    def verify_runtimes(*args, **kwargs):
        ref = "onnxruntime" if kwargs.get("against") is not None else "mindspore"
        scope = {"buf": [], "ctx": {"ref": ref, "model": kwargs.get("model")}}
        _scopes().append(scope)
        try:
            reports = orig(*args, **kwargs)
        finally:
            _scopes().pop()
        for rec in scope["buf"]:
            _emit({**rec, "via": f"verify_runtimes/{rec.get('via')}"})
        return reports
    return _mark(verify_runtimes)


def wrap_session(orig: Callable) -> Callable:
    """graphfeat's ``session(model, runtime)``: its outputs are tagged with the runtime and the file's levels."""
    @functools.wraps(orig)
    def session(model, runtime="onnxruntime", *args, **kwargs):
        sess = orig(model, runtime, *args, **kwargs)
        try:
            record = _record_of(model.metadata_props)
        except Exception:
            record = None
        label = _RUNTIME_NAMES.get(runtime, runtime)
        inner = getattr(sess, "_run", None)
        if callable(inner):  # a Session object (current tree)
            sess._run = lambda feeds: _tag_outputs(inner(feeds), label, record)
            return sess
        return lambda feeds: _tag_outputs(sess(feeds), label, record)
    return _mark(session)


# -- what to wrap, module by module -----------------------------------------------------------------------
def _set(module: Any, name: str, make: Callable[[Callable], Callable]) -> None:
    fn = getattr(module, name, None)
    if callable(fn) and not _marked(fn):
        setattr(module, name, make(fn))


def _patch_numpy(np: Any) -> None:
    try:
        from numpy.lib import npyio
    except Exception:
        return
    cls = npyio.NpzFile
    if _marked(cls.__getitem__):
        return
    orig = cls.__getitem__

    def __getitem__(self, key):
        value = orig(self, key)
        if isinstance(key, str) and key.startswith("level/"):
            tag(value, rt="mindspore", src="npz", level=key[len("level/"):])
        return value
    cls.__getitem__ = _mark(__getitem__)


def _patch_numpy_testing(mod: Any) -> None:
    _set(mod, "assert_allclose", lambda f: wrap_asserting(f, "np.assert_allclose", "err_msg"))
    _set(mod, "assert_array_equal", lambda f: wrap_asserting(f, "np.assert_array_equal", "err_msg"))
    _set(mod, "assert_array_almost_equal", lambda f: wrap_asserting(f, "np.assert_array_almost_equal", "err_msg"))


def _patch_onnxruntime(ort: Any) -> None:
    try:
        from onnxruntime.capi.onnxruntime_inference_collection import Session
    except Exception:
        return
    if _marked(Session.run):
        return
    orig = Session.run

    def run(self, output_names, input_feed, run_options=None):
        out = orig(self, output_names, input_feed, run_options)
        try:
            record = self.__dict__.get("_proof_record", False)
            if record is False:
                record = self.__dict__["_proof_record"] = _record_of(self.get_modelmeta().custom_metadata_map)
            names = output_names or [o.name for o in self.get_outputs()]
            _tag_outputs(dict(zip(names, out)), "onnxruntime", record)
        except Exception:
            pass
        return out
    Session.run = _mark(run)


_FEATURE_CELLS: dict[int, tuple[str, list[str]]] = {}


def _patch_mindspore(ms: Any) -> None:
    try:
        from mindspore import Tensor, nn
    except Exception:
        return
    if not _marked(Tensor.asnumpy):
        orig_asnumpy = Tensor.asnumpy

        def asnumpy(self):
            arr = orig_asnumpy(self)
            try:
                info = vars(self).get("_proof_tag")
            except Exception:
                info = None
            if info:
                tag(arr, rt="mindspore", model=info[0], level=info[1], mode=info[2])
            else:
                tag(arr, rt="mindspore", mode=_ms_mode())
            return arr
        Tensor.asnumpy = _mark(asnumpy)
    if not _marked(nn.Cell.__call__):
        orig_call = nn.Cell.__call__

        def __call__(self, *args, **kwargs):
            out = orig_call(self, *args, **kwargs)
            info = _FEATURE_CELLS.get(id(self)) if _FEATURE_CELLS else None
            if info is not None and isinstance(out, (tuple, list)) and len(out) == len(info[1]):
                mode = _ms_mode()
                for t, level in zip(out, info[1]):
                    try:
                        t._proof_tag = (info[0], level, mode)
                    except Exception:
                        pass
            return out
        nn.Cell.__call__ = _mark(__call__)


def _wrap_create_model(orig: Callable) -> Callable:
    @functools.wraps(orig)
    def create_model(model_name, *args, **kwargs):
        cell = orig(model_name, *args, **kwargs)
        try:
            names = list(cell.feature_info.module_name())
            if isinstance(model_name, str) and names:
                key = id(cell)
                _FEATURE_CELLS[key] = (model_name, names)
                weakref.finalize(cell, _FEATURE_CELLS.pop, key, None)
        except Exception:
            pass
        return cell
    return _mark(create_model)


def _patch_matrix(mod: Any) -> None:
    """The toolchain matrix (tests/toolchain/matrix.py): ``compare(tool, got, want)`` passes at ``<= limit(tool)``."""
    compare, limit = getattr(mod, "compare", None), getattr(mod, "limit", None)
    if not (callable(compare) and callable(limit) and hasattr(mod, "evaluate")) or _marked(compare):
        return

    @functools.wraps(compare)
    def wrapped(tool, got, want):
        err = compare(tool, got, want)
        try:
            ok = err <= limit(tool)
        except Exception:
            ok = False
        note("toolchain.compare", got, want, ok, hint=f"toolchain {tool}")
        return err
    mod.compare = _mark(wrapped)


def patch_conftest(mod: Any) -> None:
    """The tests' ``conftest.assert_close_rel(actual, expected, rtol, what)``."""
    _set(mod, "assert_close_rel", lambda f: wrap_asserting(f, "assert_close_rel", "what"))


PATCHES: dict[str, Callable[[Any], None]] = {
    "numpy": _patch_numpy,
    "numpy.testing": _patch_numpy_testing,
    "onnxruntime": _patch_onnxruntime,
    "mindspore": _patch_mindspore,
    # round 1 (097758a)
    "graphfeat.proof": lambda m: _set(m, "compare_level", wrap_compare_level),
    "graphfeat.verify": lambda m: _set(m, "verify_runtimes", wrap_verify),
    "graphfeat.runtimes": lambda m: _set(m, "session", wrap_session),
    # the current tree
    "graphfeat.runtime.compare": lambda m: _set(m, "compare_level", wrap_compare_level),
    "graphfeat.runtime.verification": lambda m: _set(m, "verify_runtimes", wrap_verify),
    "graphfeat.runtime.sessions": lambda m: _set(m, "session", wrap_session),
    # both
    "exporters.onnx_export": lambda m: _set(m, "export_model", wrap_export),
    "exporters.factory": lambda m: _set(m, "create_model", _wrap_create_model),
    "matrix": _patch_matrix,
}


class _Loader(importlib.abc.Loader):
    """Runs the real loader, then the module's patch."""

    def __init__(self, inner: Any, name: str) -> None:
        self._inner, self._name = inner, name

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module) -> None:
        self._inner.exec_module(module)
        try:
            PATCHES[self._name](module)
        except Exception as exc:
            _sink.write({"type": "error", "t": time.time(), "where": self._name, "error": repr(exc)[:200]})

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds a module of :data:`PATCHES` with the other finders and wraps its loader."""

    def __init__(self) -> None:
        self._busy: set[str] = set()

    def find_spec(self, name, path=None, target=None):
        if name not in PATCHES or name in self._busy:
            return None
        self._busy.add(name)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._busy.discard(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _Loader(spec.loader, name)
        return spec


def install() -> None:
    """Wrap the comparison functions as their modules are imported (and those already imported now)."""
    global _installed
    if _installed or not os.environ.get(ENV_DIR):
        return
    _installed = True
    sys.meta_path.insert(0, _Finder())
    for name, patch in PATCHES.items():
        if name in sys.modules:
            try:
                patch(sys.modules[name])
            except Exception:
                pass
    import atexit

    atexit.register(lambda: _untagged[0] and _sink.write({"type": "untagged", "n": _untagged[0]}))


# -- pytest hooks (only when loaded with -p) ----------------------------------------------------------------
_config: list = []
_running: dict[str, list] = {}


def pytest_configure(config) -> None:
    _config[:] = [config]


def _runs_tests() -> bool:
    """False in a pytest-xdist controller, which only relays its workers' reports."""
    return not (_config and _config[0].pluginmanager.has_plugin("dsession"))


def pytest_plugin_registered(plugin) -> None:
    if getattr(plugin, "__name__", "").rsplit(".", 1)[-1] == "conftest":
        patch_conftest(plugin)


def pytest_runtest_logstart(nodeid, location) -> None:
    if _runs_tests():
        _running[nodeid] = [time.time()]


def pytest_runtest_logreport(report) -> None:
    if report.nodeid in _running:
        _running[report.nodeid].append((report.when, report.outcome, hasattr(report, "wasxfail")))


def pytest_runtest_logfinish(nodeid, location) -> None:
    seen = _running.pop(nodeid, None)
    if not seen:
        return
    t0, reps = seen[0], seen[1:]
    passed = (any(when == "call" and outcome == "passed" for when, outcome, _ in reps)
              and all(outcome == "passed" and not xfail for _, outcome, xfail in reps))
    _sink.write({"type": "test", "nodeid": nodeid, "t0": t0, "t1": time.time(), "passed": passed,
                 "outcome": ",".join(f"{w}:{o}" for w, o, _ in reps)})


install()
