"""What the default test suite proves: the (family, runtime, level) combinations it compared and that passed.

    .venv/bin/python bench/proof_count.py                                  # the current checkout
    .venv/bin/python bench/proof_count.py --base 097758a --only base --base-env ONEDNN_MAX_CPU_ISA=AVX2
    .venv/bin/python bench/proof_count.py --base 097758a --compare-only    # both, from the saved results
    .venv/bin/python bench/proof_count.py -- -k resnet18                   # arguments after -- go to pytest

Issue #16 asks for a faster suite that drops nothing it proves. Test ids do not
map one to one between rounds (round 1 had a file per family, now they are
parametrised), so this counts what the tests *compare*, instrumented, not test ids.

It runs a tree's default suite as ``scripts/dev.sh test`` does without
``--runslow``: with ``tests/core`` (the current layout) the core suite in
``.venv-core`` and then ``tests/exporters tests/integration tests/toolchain``
with ``--dist loadgroup`` and ``GRAPHFEAT_THREADS`` = cores / workers; without
it (round 1) ``pytest`` over the tree's ``testpaths``. Both on ``--workers``
pytest-xdist workers (dev.sh's min(cores, 4); round 1's dev.sh ran serially,
which changes when a comparison runs, not which). ``--base REV`` checks REV out
into a temporary ``git worktree --detach`` and removes it afterwards; the
tree is put first on PYTHONPATH, so the same venv runs either tree.

The plugin (``_proof_count_plugin.py``, loaded with ``-p`` and, for the
processes the tests start, by a generated ``sitecustomize.py``) tags every
array a runtime returns (ONNX Runtime, OpenVINO, ``onnx.reference``:
model and level from the file's graphfeat record; MindSpore: execution mode,
and model and level for a registered feature model's outputs; the export's
reference ``.npz``: level) and wraps the comparisons: ``compare_level``,
the tests' ``assert_close_rel``, ``numpy.testing.assert_allclose`` /
``assert_array_equal`` / ``assert_array_almost_equal``, the toolchain
matrix's ``compare``, and, as scopes, ``export_model`` (its proof: every
level on ONNX Runtime against MindSpore) and ``verify_runtimes``.

A combination counts when a comparison of that level ran on that runtime
against the MindSpore reference (live, or the ``.npz`` an export wrote), the
comparison passed, and the test it ran in passed. The runtime is
``onnxruntime``, ``openvino``, ``onnx.reference``, or ``mindspore-graph``
(MindSpore in GRAPH_MODE against MindSpore eager). The family is the tree's
own ``exporters.model_family`` of the model name. Also listed, not counted:
``mindspore-internal`` (MindSpore against MindSpore in one mode: subsets,
checkpoints, cells run one by one) and ``onnx-internal`` (an ONNX file
against another ONNX file).

What it cannot see, or folds together: comparisons written inline
(``np.abs(a - b).max() < tol``, ``np.allclose`` in an ``assert``); arrays that
lost their tag through a copy (``np.concatenate``, ``astype``) before an
unwrapped check; processes started without the inherited environment
(PYTHONPATH); checks that are not comparisons (shapes, non-degenerate
statistics); outputs that are not levels (logits). Models outside the
registry (MindCV's own cells, user cells, the synthetic ``test`` models) are
listed as not counted. A combination is one whatever the model of the
family (mobilenet_v3_small_100's ``features.5`` and mobilenet_v3_large_100's
are one), input size, batch, precision (an fp16 or QDQ copy judged by its
looser criterion counts) or tolerance, and however often it ran. A level
name taken from a message (``err_msg``, ``what``) must be one a tagged
comparison of that model used. An export a session fixture shares is
credited to the first test that asked for it.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent)]
from _common import BENCH, CACHE, ROOT, checkout, machine_note, table  # noqa: E402

PLUGIN = BENCH / "_proof_count_plugin.py"
COUNTED = ("onnxruntime", "openvino", "onnx.reference", "mindspore-graph")
MINDSPORE_SUITES = ("tests/exporters", "tests/integration", "tests/toolchain")
#: environment variables a result records (they change speed or threads, not what is compared)
ENV_SHOWN = ("ONEDNN_", "DNNL_", "GRAPHFEAT_", "OMP_")
SITECUSTOMIZE = '''import os
if os.environ.get("GRAPHFEAT_PROOF_DIR"):
    try:
        import _proof_count_plugin
    except Exception as exc:  # never break the process under test
        import sys
        print(f"proof_count: plugin not loaded: {exc!r}", file=sys.stderr)
'''
REGISTRY = ("import json, exporters; "
            "print('@@registry ' + json.dumps({n: exporters.model_family(n) for n in exporters.list_models()}))")


# -- running a tree ------------------------------------------------------------------------------------------
def suites(tree: Path, python: str, core_python: str, workers: int) -> list[tuple[str, str, list[str], dict]]:
    """``(label, python, pytest args, extra env)`` of the tree's default suite, as its scripts/dev.sh runs it."""
    xdist = ["-n", str(workers), "--dist", "loadgroup"] if workers > 1 else []
    if not (tree / "tests" / "core").is_dir():
        return [("all", python, xdist, {})]
    env = {}
    if workers > 1 and not os.environ.get("GRAPHFEAT_THREADS"):
        env["GRAPHFEAT_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    rest = [d for d in MINDSPORE_SUITES if (tree / d).is_dir()]
    return [("core", core_python, (["-n", str(workers)] if workers > 1 else []) + ["tests/core"], {}),
            ("mindspore", python, xdist + rest, env)]


def registry(tree: Path, python: str) -> dict[str, str]:
    """``{model: family}`` from the tree's own ``exporters`` registry."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("GRAPHFEAT_PROOF_DIR", None)
    proc = subprocess.run([python, "-c", REGISTRY], cwd=tree, env=env, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("@@registry "):
            return json.loads(line[len("@@registry "):])
    raise SystemExit(f"cannot list {tree}'s registry: {proc.stderr.strip()[-400:]}")


def run_tree(label: str, tree: Path, args: argparse.Namespace, extra_env: dict[str, str]) -> dict:
    """Run the tree's default suite with the plugin; return its merged result."""
    work = Path(tempfile.mkdtemp(prefix=f"graphfeat-proof-{label}-"))
    records, boot = work / "records", work / "boot"
    records.mkdir()
    boot.mkdir()
    shutil.copy(PLUGIN, boot / PLUGIN.name)
    (boot / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log_dir = Path(args.results)
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **extra_env, "GRAPHFEAT_PROOF_DIR": str(records),
           "PYTHONPATH": os.pathsep.join([str(tree), str(boot)] + ([os.environ["PYTHONPATH"]]
                                                                   if os.environ.get("PYTHONPATH") else []))}
    runs = []
    for name, python, suite_args, suite_env in suites(tree, args.python, args.core_python, args.workers):
        cmd = [python, "-m", "pytest", "-p", "_proof_count_plugin", "-p", "no:cacheprovider", "-q",
               *suite_args, *args.pytest_args]
        log = log_dir / f"{safe(label)}.{name}.log"
        shown = " ".join(f"{k}={v}" for k, v in {**extra_env, **suite_env}.items())
        print(f"[{label}] {shown + ' ' if shown else ''}{' '.join(cmd)}  (cwd {tree}, log {log})", flush=True)
        t0 = time.perf_counter()
        with open(log, "w") as out:
            rc = subprocess.run(cmd, cwd=tree, env={**env, **suite_env}, stdout=out, stderr=subprocess.STDOUT).returncode
        seconds = time.perf_counter() - t0
        tail = [ln for ln in log.read_text().splitlines() if ln.strip()][-1:] or ["(no output)"]
        print(f"[{label}] {name}: exit {rc} after {minutes(seconds)}: {tail[0]}", flush=True)
        runs.append({"suite": name, "cmd": cmd, "env": {**extra_env, **suite_env}, "rc": rc, "seconds": seconds,
                     "summary": tail[0]})
    families = registry(tree, args.python)
    result = merge(records, families)
    env_shown = {k: v for k, v in {**os.environ, **extra_env}.items()
                 if k.startswith(ENV_SHOWN) and k != "GRAPHFEAT_PROOF_DIR"}
    result.update(label=label, tree=str(tree), commit=git(tree, "rev-parse", "--short", "HEAD"), runs=runs,
                  env=env_shown, registry=families)
    if args.keep_records:
        result["records"] = str(records)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return result


# -- merging the records ---------------------------------------------------------------------------------------
def tokens(text: str) -> list[str]:
    return [t for t in re.split(r"[\s,;:()\[\]'\"=/]+|-(?=[a-z])", text or "") if t]


def merge(records: Path, families: dict[str, str]) -> dict:
    """Give each passing comparison to the test whose time window holds it (in its process or the nearest
    ancestor's), keep those of passed tests, and group them by (family, runtime, level)."""
    procs: dict[tuple, list[tuple]] = {}
    windows: dict[tuple, list[tuple]] = defaultdict(list)
    cmps, errors, untagged = [], [], 0
    tests = Counter()
    for path in records.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            key = tuple(rec.get("key") or ())
            kind = rec.get("type")
            if kind == "proc":
                procs[key] = [tuple(a) for a in rec["anc"]]
            elif kind == "test":
                windows[key].append((rec["t0"], rec["t1"], rec["nodeid"], rec["passed"]))
                outcome = rec["outcome"]
                tests["passed" if rec["passed"] else "failed" if "failed" in outcome else
                      "skipped" if "skipped" in outcome else "other"] += 1
            elif kind == "cmp":
                cmps.append(rec)
            elif kind == "error":
                errors.append(rec)
            elif kind == "untagged":
                untagged += rec["n"]

    def owner(rec: dict) -> tuple[str, bool] | None:
        key = tuple(rec["key"])
        for k in [key, *procs.get(key, [])]:
            for t0, t1, nodeid, passed in windows.get(k, ()):
                if t0 <= rec["t"] <= t1:
                    return nodeid, passed
        return None

    known_levels: dict[str, set] = defaultdict(set)
    for rec in cmps:
        if rec.get("model") and rec.get("level"):
            known_levels[rec["model"]].add(rec["level"])
    combos: dict[tuple, dict] = {}
    dropped = Counter()
    for rec in cmps:
        who = owner(rec)
        if who is None:
            dropped["outside any test"] += 1
            continue
        nodeid, passed = who
        if not passed:
            dropped["in a test that did not pass"] += 1
            continue
        model = rec.get("model")
        if model is None:  # no tag named it: the message, then the test's parameters
            model = next((t for t in tokens(rec.get("hint", "")) + tokens(nodeid.partition("[")[2]) if t in families),
                         model)
        level = rec.get("level") or next((t for t in tokens(rec.get("hint", "")) if t in known_levels.get(model, ())),
                                         None)
        if not level:
            dropped["no level name"] += 1
            continue
        family = families.get(model) if model else None
        if family is None:
            dropped[f"model not registered ({model})"] += 1
            continue
        entry = combos.setdefault(f"{family}|{rec['runtime']}|{level}", {"models": set(), "via": set(),
                                                                         "tests": set(), "ms_modes": set()})
        entry["models"].add(model)
        entry["via"].add(rec["via"])
        entry["tests"].add(nodeid)
        if rec.get("ms_mode"):
            entry["ms_modes"].add(rec["ms_mode"])
    return {"combos": {k: {f: sorted(v) for f, v in e.items()} for k, e in sorted(combos.items())},
            "tests": dict(tests), "dropped": dict(dropped), "untagged_comparisons": untagged,
            "errors": errors[:20], "comparisons": len(cmps)}


# -- reporting --------------------------------------------------------------------------------------------
def split(key: str) -> tuple[str, str, str]:
    family, runtime, level = key.split("|", 2)
    return family, runtime, level


def counted(result: dict) -> set[str]:
    return {k for k in result["combos"] if split(k)[1] in COUNTED}


def report(result: dict) -> None:
    runs = ", ".join(f"{r['suite']} {minutes(r['seconds'])} (exit {r['rc']})" for r in result["runs"])
    print(f"\n## {result['label']}: {result['tree']} at {result['commit']}\n")
    print(f"suites: {runs}; tests: " + ", ".join(f"{n} {k}" for k, n in sorted(result["tests"].items())))
    proven = counted(result)
    print(f"\n**proven (family, runtime, level) against the MindSpore reference: {len(proven)}**\n")
    by_runtime = Counter(split(k)[1] for k in proven)
    by_family: dict[str, Counter] = defaultdict(Counter)
    for k in proven:
        family, runtime, _ = split(k)
        by_family[family][runtime] += 1
    runtimes = [r for r in COUNTED if by_runtime[r]]
    rows = [[f, *[c[r] or "" for r in runtimes], sum(c.values())] for f, c in sorted(by_family.items())]
    rows.append(["**all**", *[by_runtime[r] for r in runtimes], len(proven)])
    print(table(["family", *runtimes, "total"], rows))
    modes = Counter(m for k in proven for m in result["combos"][k]["ms_modes"])
    print("\nMindSpore side of the counted combinations (one may have several): "
          + ", ".join(f"{m} {n}" for m, n in sorted(modes.items())))
    others = Counter(split(k)[1] for k in result["combos"] if split(k)[1] not in COUNTED)
    if others:
        print("\nalso compared, not counted: " + ", ".join(f"{r} {n}" for r, n in sorted(others.items())))
    dropped = ", ".join(f"{n} {why}" for why, n in sorted(result["dropped"].items()))
    print(f"passing comparisons recorded: {result['comparisons']}; not counted: {dropped or 'none'}; "
          f"untagged without a name: {result['untagged_comparisons']}; plugin errors: {len(result['errors'])}")


def compare(before: dict, after: dict) -> None:
    lost, gained = sorted(counted(before) - counted(after)), sorted(counted(after) - counted(before))
    print(f"\n## {before['label']} -> {after['label']}: {len(counted(before))} -> {len(counted(after))} "
          f"({len(lost)} lost, {len(gained)} gained)\n")
    for title, keys, src in (("lost", lost, before), ("gained", gained, after)):
        if not keys:
            print(f"{title}: none")
            continue
        rows = []
        for k in keys:
            e = src["combos"][k]
            tests = e["tests"][:2] + ([f"+{len(e['tests']) - 2}"] if len(e["tests"]) > 2 else [])
            rows.append([*split(k), ",".join(e["models"]), ",".join(e["via"]), " ".join(tests)])
        print(f"{title} ({len(keys)}, as proven in {src['label']}):\n")
        print(table(["family", "runtime", "level", "models", "via", "tests"], rows) + "\n")
    other = lambda r: {k for k in r["combos"] if split(k)[1] not in COUNTED}  # noqa: E731
    for title, keys in (("lost", other(before) - other(after)), ("gained", other(after) - other(before))):
        groups: dict[tuple, list[str]] = defaultdict(list)
        for k in sorted(keys):
            family, runtime, level = split(k)
            groups[family, runtime].append(level)
        print(f"not counted, {title}: " + ("; ".join(f"{f} {r}: {' '.join(ls)}" for (f, r), ls in groups.items())
                                           or "none"))


# -- helpers ----------------------------------------------------------------------------------------------
def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:02.0f} s"


def safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", label)


def default_core_python(python: str) -> str:
    """dev.sh's ``.venv-core`` beside the venv of ``python``, if there is one (else ``python``)."""
    core = Path(python).parent.parent.with_name(".venv-core") / "bin" / "python"
    return str(core) if core.exists() else python


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", help="also count this commit's suite (a temporary git worktree), e.g. 097758a")
    p.add_argument("--only", choices=["current", "base"], help="run one tree; the other's saved result is reused")
    p.add_argument("--compare-only", action="store_true", help="run nothing: report the saved results")
    p.add_argument("--base-env", action="append", default=[], metavar="KEY=VALUE",
                   help="environment of the base run only (e.g. ONEDNN_MAX_CPU_ISA=AVX2)")
    p.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 4),
                   help="pytest-xdist workers (default: scripts/dev.sh's min(cores, 4); 0 or 1: none)")
    p.add_argument("--python", default=sys.executable, help="the venv's python (default: this one)")
    p.add_argument("--core-python", help="python of the core suite (default: .venv-core beside --python)")
    p.add_argument("--results", default=str(CACHE / "proof_count"), help="where results and logs are saved")
    p.add_argument("--keep-records", action="store_true", help="keep the raw records (their path is saved)")
    p.add_argument("pytest_args", nargs="*", help="after --: passed to every pytest run")
    args = p.parse_args()
    args.core_python = args.core_python or default_core_python(args.python)
    results = Path(args.results)
    wanted = ["current"] + ([args.base] if args.base else [])
    if args.only == "base" and not args.base:
        p.error("--only base needs --base REV")
    run = [] if args.compare_only else [w for w in wanted if args.only is None or
                                        (args.only == "current") == (w == "current")]
    print(machine_note())
    done: dict[str, dict] = {}
    for label in run:
        t0 = time.perf_counter()
        if label == "current":
            done[label] = run_tree(label, ROOT, args, {})
        else:
            with checkout(label) as base:
                done[label] = run_tree(label, base, args, dict(kv.split("=", 1) for kv in args.base_env))
        done[label]["wall_seconds"] = time.perf_counter() - t0
        results.mkdir(parents=True, exist_ok=True)
        (results / f"{safe(label)}.json").write_text(json.dumps(done[label], indent=1))
    for label in wanted:
        if label not in done and (results / f"{safe(label)}.json").exists():
            done[label] = json.loads((results / f"{safe(label)}.json").read_text())
            kept = Path(done[label].get("records") or "/nonexistent")
            if kept.is_dir() and done[label].get("registry"):  # merge the kept records again (this script's rules)
                done[label].update(merge(kept, done[label]["registry"]))
    for label in wanted:
        if label in done:
            report(done[label])
    if args.base and args.base in done and "current" in done:
        compare(done[args.base], done["current"])
    return 0 if all(r["rc"] in (0, 5) for d in done.values() for r in d["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
