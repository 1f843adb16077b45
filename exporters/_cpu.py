"""Cap oneDNN's CPU ISA at AVX2 on AVX-512 CPUs, where MindSpore's convolutions would otherwise crawl.

The rule (``auto``, the default): **if the CPU has oneDNN's ``avx512_core`` level (``avx512f``,
``avx512bw``, ``avx512vl`` and ``avx512dq`` in ``/proc/cpuinfo``), cap at ``AVX2``; otherwise leave
oneDNN alone.** Why: on MindSpore's plain ``nchw``/``oihw`` tensors, oneDNN at any AVX-512 level runs
every k x k and depthwise f32 convolution as ``jit_uni_ncsp:conv+ref:any`` (a scalar reference loop),
orders of magnitude slower than AVX2's ``gemm:jit`` for the same outputs, and what AVX-512 does better
(1x1 convolutions, MatMul) is marginal. The path follows oneDNN's ISA dispatch, not the vendor, hence a
CPU-flag test. ``bench/mindspore_isa.py`` times every cap and says whether the rule still picks the
fastest: re-run it after a MindSpore upgrade (numbers: bench/README.md, "Measurements behind the code's
rules").

Control, in order of precedence:

* ``ONEDNN_MAX_CPU_ISA`` (or the older ``DNNL_MAX_CPU_ISA``) already set in
  the environment: left alone, whatever it says.
* ``GRAPHFEAT_ONEDNN_ISA=auto`` (default): the rule above.
  ``GRAPHFEAT_ONEDNN_ISA=off``: no cap, oneDNN's own choice.
  ``GRAPHFEAT_ONEDNN_ISA=<ISA>``: that cap, one of `ONEDNN_ISAS`
  (e.g. ``AVX2``, ``AVX512_CORE``); an unknown value warns and falls back to
  ``auto``.

Ordering: the cap is set in ``os.environ["ONEDNN_MAX_CPU_ISA"]`` of this process (children inherit
it), and oneDNN reads it once, at its first primitive, not at ``import mindspore``. So it must be
set before the process's first oneDNN kernel (a convolution): after ``import mindspore``,
``set_context`` or non-oneDNN kernels (an ``Add``) it still works, after a convolution it has no
effect. Hence ``exporters`` must be imported before the first MindSpore convolution of the process.
`isa_policy` reports what was decided and, from oneDNN itself, which ISA is in effect
(``applied`` is False when the cap came too late); when MindSpore was imported before ``exporters``,
importing ``exporters`` checks that and warns (``RuntimeWarning``) if a kernel had already run.
"""
from __future__ import annotations

import ctypes
import os
import sys
import warnings
from typing import Mapping

SWITCH = "GRAPHFEAT_ONEDNN_ISA"
ONEDNN_VARS = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")

# ONEDNN_MAX_CPU_ISA values oneDNN 3.x documents (x64), lowest first; AVX512_CORE_FP16/_AMX/_AMX_FP16
# are the older names of AVX10_1_512/_AMX/_AMX_FP16.
ONEDNN_ISAS = (
    "SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2",
    "AVX512_CORE", "AVX512_CORE_VNNI", "AVX512_CORE_BF16",
    "AVX10_1_512", "AVX512_CORE_FP16", "AVX10_1_512_AMX", "AVX512_CORE_AMX",
    "AVX10_1_512_AMX_FP16", "AVX512_CORE_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2",
    "DEFAULT",
)

# /proc/cpuinfo flags that make up oneDNN's avx512_core level (where the slow jit_uni_ncsp path starts).
AVX512_CORE_FLAGS = ("avx512f", "avx512bw", "avx512vl", "avx512dq")
CAP_ON_AVX512 = "AVX2"

_policy: dict | None = None


def cpu_info(path: str = "/proc/cpuinfo") -> dict:
    """Vendor, model name and flags of the first CPU in ``/proc/cpuinfo`` (empty values off Linux)."""
    info = {"vendor": "", "model": "", "flags": frozenset()}
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "vendor_id" and not info["vendor"]:
                    info["vendor"] = value.strip()
                elif key == "model name" and not info["model"]:
                    info["model"] = value.strip()
                elif key == "flags":
                    info["flags"] = frozenset(value.split())
                    break
    except OSError:
        pass
    return info


def decide(environ: Mapping[str, str] | None = None, cpu: dict | None = None) -> dict:
    """What to do about ``ONEDNN_MAX_CPU_ISA``, without doing it.

    Returns ``{"cap": str | None, "source": ..., "reason": ..., "set": bool}``: ``cap`` is the
    value in force (None: oneDNN's own choice), ``set`` whether this module must set it.
    """
    environ = os.environ if environ is None else environ
    for var in ONEDNN_VARS:
        if environ.get(var):
            return {"cap": environ[var], "source": var, "set": False,
                    "reason": f"{var}={environ[var]} was set in the environment; left alone"}
    switch = environ.get(SWITCH, "").strip()
    word = switch.upper() or "AUTO"
    if word == "OFF":
        return {"cap": None, "source": f"{SWITCH}=off", "set": False, "reason": "switched off: oneDNN's own choice"}
    if word in ONEDNN_ISAS:
        return {"cap": word, "source": f"{SWITCH}={switch}", "set": True, "reason": f"{SWITCH} asks for {word}"}
    note = ""
    if word != "AUTO":
        warnings.warn(f"{SWITCH}={switch!r} is not auto, off or one of {', '.join(ONEDNN_ISAS)}; using auto",
                      stacklevel=3)
        note = f" ({SWITCH}={switch!r} not understood)"
    cpu = cpu_info() if cpu is None else cpu
    flags = cpu["flags"]
    if not flags:
        return {"cap": None, "source": "auto", "set": False,
                "reason": f"no x86 CPU flags readable (/proc/cpuinfo): oneDNN's own choice{note}"}
    if all(f in flags for f in AVX512_CORE_FLAGS):
        return {"cap": CAP_ON_AVX512, "source": "auto", "set": True,
                "reason": (f"CPU has AVX-512 ({'+'.join(AVX512_CORE_FLAGS)}): oneDNN would run k x k f32 "
                           f"convolutions as jit_uni_ncsp:conv+ref:any (~1 GFLOP/s); capped at "
                           f"{CAP_ON_AVX512} (gemm:jit, ~100x faster){note}")}
    return {"cap": None, "source": "auto", "set": False,
            "reason": f"CPU has no AVX-512 core set: oneDNN is at AVX2 or below already, nothing to cap{note}"}


def apply_isa_policy() -> dict:
    """Decide and, if needed, set ``ONEDNN_MAX_CPU_ISA`` in ``os.environ`` (once per process)."""
    global _policy
    if _policy is None:
        policy = decide()
        if policy["set"]:
            os.environ["ONEDNN_MAX_CPU_ISA"] = policy["cap"]
        # Still effective after `import mindspore`, as long as no oneDNN kernel ran yet (see the module's text).
        policy["mindspore_imported_before"] = "mindspore" in sys.modules
        _policy = policy
    return _policy


def _libdnnl() -> ctypes.CDLL | None:
    """MindSpore's bundled oneDNN (the same library instance MindSpore uses), or None."""
    ms = sys.modules.get("mindspore")
    roots = list(getattr(ms, "__path__", []) or [])
    for root in roots:
        path = os.path.join(root, "lib", "libdnnl.so.3")
        if os.path.exists(path):
            try:
                return ctypes.CDLL(path)
            except OSError:
                return None
    return None


def effective_isa() -> tuple[str, int] | None:
    """The ISA oneDNN uses in this process (``dnnl_get_effective_cpu_isa``): ``("AVX2", 0x7)``.

    Asking fixes it: oneDNN reads ``ONEDNN_MAX_CPU_ISA`` on its first ISA query, so call this
    only after the policy was applied (importing ``exporters`` does that). None if MindSpore's
    oneDNN cannot be found.
    """
    lib = _libdnnl()
    if lib is None:
        return None
    try:
        lib.dnnl_get_effective_cpu_isa.restype = ctypes.c_int
        lib.dnnl_cpu_isa2str.restype = ctypes.c_char_p
        lib.dnnl_cpu_isa2str.argtypes = [ctypes.c_int]
        code = lib.dnnl_get_effective_cpu_isa()
        name = (lib.dnnl_cpu_isa2str(code) or b"").decode()
    except (AttributeError, OSError):
        return None
    name = name.upper().removeprefix("CPU_ISA_") or hex(code)
    return name, code


# dnnl_cpu_isa_t bit masks (dnnl_types.h); a level's mask contains the masks of the levels it includes.
_ISA_MASKS = {"SSE41": 0x1, "AVX": 0x3, "AVX2": 0x7, "AVX2_VNNI": 0xF, "AVX2_VNNI_2": 0x1F,
              "AVX512_CORE": 0x27, "AVX512_CORE_VNNI": 0x67, "AVX512_CORE_BF16": 0xE7,
              "AVX10_1_512": 0x1EF, "AVX512_CORE_FP16": 0x1EF, "AVX10_1_512_AMX": 0xFEF,
              "AVX512_CORE_AMX": 0xFEF, "AVX10_1_512_AMX_FP16": 0x1FEF, "AVX512_CORE_AMX_FP16": 0x1FEF}


def isa_policy(check: bool = True) -> dict:
    """What was decided about oneDNN's ISA cap and why, for export reports and benches.

    Keys: ``cap`` (the ``ONEDNN_MAX_CPU_ISA`` in force, None for oneDNN's own choice),
    ``source`` (``auto``, ``GRAPHFEAT_ONEDNN_ISA=...`` or the oneDNN variable that was preset),
    ``reason``, ``cpu`` (vendor and model), ``mindspore_imported_before``; with ``check``,
    ``effective`` (oneDNN's own answer, e.g. ``"AVX2"``; see `effective_isa`) and
    ``applied`` (True if oneDNN runs at or below ``cap``, False if above it -- the cap came after
    oneDNN's first kernel -- None if unknown).
    """
    policy = dict(apply_isa_policy())
    cpu = cpu_info()
    policy["cpu"] = f"{cpu['vendor']} {cpu['model']}".strip()
    if check:
        eff = effective_isa()
        policy["effective"] = eff[0] if eff else None
        cap_mask = _ISA_MASKS.get((policy["cap"] or "").upper())
        if eff is None or (policy["cap"] and cap_mask is None):
            policy["applied"] = None
        else:
            policy["applied"] = cap_mask is None or eff[1] & ~cap_mask == 0
    return policy


def warn_if_too_late() -> None:
    """Warn if the cap was set but a oneDNN kernel had already fixed a higher ISA.

    Called right after ``import mindspore``. It only asks oneDNN (which fixes its ISA for good)
    when MindSpore was imported before ``exporters``: the one case where a kernel can have run
    first. Otherwise nothing is fixed here, and oneDNN reads the variable at its first kernel.
    """
    policy = apply_isa_policy()
    if not (policy.get("mindspore_imported_before") and policy["set"]):
        return
    checked = isa_policy()
    if checked.get("applied") is False:
        warnings.warn(
            f"ONEDNN_MAX_CPU_ISA={policy['cap']} came too late: a MindSpore oneDNN kernel ran before "
            f"`exporters` was imported, and oneDNN stays at {checked['effective']} in this process "
            f"(k x k convolutions ~100x slower). Import exporters before running MindSpore, or set "
            f"ONEDNN_MAX_CPU_ISA={policy['cap']} before the process starts.", RuntimeWarning, stacklevel=2)
