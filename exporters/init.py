"""Seeded random weights that keep activations O(1) through any depth.

Convolutions get He-normal weights and dense layers ``1/sqrt(fan_in)``; norms
start at identity. Then the BatchNorm running statistics are calibrated on one
seeded random batch, so every normalised activation has unit scale whatever
the depth: a comparison between runtimes then works on real signal, not on
1e-9 noise. Cells may define ``init_extra_weights(rng)`` for parameters that
are not conv, dense or norm weights (layer scales, for example), and
``init_after_calibration()`` to adjust what calibration produced.

Initialisation is deterministic for a given seed, so `seeded_weights`
memoises it per model configuration: building the same model with the same
seed again (a classifier and its feature model, say) skips the calibration.

A model that gets seeded weights (or a checkpoint's) is built inside
`deferred_parameters`: MindSpore's own initialisers, whose draws the
seeded pass replaces, then never run (a large share of a big model's build;
bench/README.md, "Measurements behind the code's rules").
"""
from __future__ import annotations

import math
from collections import OrderedDict
from contextlib import nullcontext
from typing import TYPE_CHECKING

import numpy as np
from mindspore import Tensor, nn, ops

from ._mindspore import eager  # quiet import, CPU graph mode

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

CALIBRATION_SHAPE = (2, 160, 160)  # batch, H, W of the BatchNorm calibration input
#: initial scale of the norm that closes a residual branch (timm's zero_init_last, but not zero):
#: with full-scale branches a deep random network amplifies float32 rounding until runtimes disagree
#: beyond the levels' tolerance (bench/README.md, "Measurements behind the code's rules")
RESIDUAL_GAMMA = 0.25


def deferred_parameters(defer: bool = True) -> "AbstractContextManager[None]":
    """Build cells inside this block without running MindSpore's initialisers
    (``mindspore.nn.utils.no_init_parameters``): a parameter set before it is
    read never draws its initial values; one read or run first draws them then
    (``Parameter.init_data``). ``defer=False``, or a MindSpore without that
    context manager: an ordinary build. Re-entrant."""
    try:
        from mindspore.nn.utils import no_init_parameters
    except ImportError:  # removed from a later MindSpore: initialise as usual (slower, same result)
        return nullcontext()
    from mindspore import Parameter

    if not defer or getattr(Parameter, "init_param", True) is False:  # off, or inside such a block already:
        return nullcontext()  # (leaving a nested one would end the outer's deferral early)
    return no_init_parameters()


#: normals drawn per call by `_normal`
_CHUNK = 1 << 22


def _normal(rng: np.random.Generator, shape, std: float) -> Tensor:
    """``rng.normal(0, std, shape)`` as float32, drawn in chunks: the same numbers as one call (the stream is
    consumed in order), without a float64 copy of a large weight (8 bytes per parameter, and slower to
    draw)."""
    out = np.empty(shape, dtype=np.float32)
    flat = out.reshape(-1)
    for start in range(0, flat.size, _CHUNK):
        flat[start:start + _CHUNK] = rng.normal(0.0, std, size=min(_CHUNK, flat.size - start))
    return Tensor(out)


def _fill(param, value: float) -> None:
    param.set_data(Tensor(np.full(param.shape, value, dtype=np.float32)))


def init_residual_norm(norm_or_branch: nn.Cell) -> None:
    """Start a residual branch's closing BatchNorm (given, or the branch's last one) at ``RESIDUAL_GAMMA``.

    For a block's ``init_extra_weights``; runs after the first init pass, so it is not overwritten.
    """
    norm = norm_or_branch
    if not isinstance(norm, (nn.BatchNorm2d, nn.BatchNorm1d)):
        norms = [c for _, c in norm_or_branch.cells_and_names() if isinstance(c, (nn.BatchNorm2d, nn.BatchNorm1d))]
        if not norms:
            return
        norm = norms[-1]
    _fill(norm.gamma, RESIDUAL_GAMMA)


def condition_pooled_norm(norm: nn.Cell) -> None:
    """After calibration, make a BatchNorm on globally pooled features divide by one common scale.

    Such a norm sees one value per image and channel, so a 2-image calibration
    batch leaves some channels with near-zero variances (and second moments);
    dividing by them turns float rounding into large output changes (ReXNet's
    SE norms; bench/README.md, "Measurements behind the code's rules").
    ``mean = 0`` and every variance set to the channels' average second moment
    keep the output input-dependent, of unit scale on average, and well
    conditioned. For ``init_after_calibration``.
    """
    if not isinstance(norm, (nn.BatchNorm2d, nn.BatchNorm1d)):
        return
    mean = norm.moving_mean.asnumpy().astype(np.float64)
    var = norm.moving_variance.asnumpy().astype(np.float64)
    second_moment = float(np.mean(var + mean * mean))
    norm.moving_variance.set_data(Tensor(np.full(var.shape, second_moment, np.float32)))
    norm.moving_mean.set_data(Tensor(np.zeros(mean.shape, np.float32)))


def init_weights(model: nn.Cell, seed: int | None = None, in_channels: int = 3) -> None:
    """Give ``model`` reproducible random weights (``seed``) and calibrated BatchNorm statistics."""
    # Separate streams: a model that lacks a head (a rewritten feature class) still gets
    # the same weights for what it has, and the same calibration batch.
    weights_seq, calibration_seq = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(weights_seq)
    for _, cell in model.cells_and_names():
        if isinstance(cell, nn.Conv2d):
            w = cell.weight
            fan_in = int(np.prod(w.shape[1:]))
            w.set_data(_normal(rng, w.shape, math.sqrt(2.0 / fan_in)))
            if cell.bias is not None:
                _fill(cell.bias, 0.0)
        elif isinstance(cell, nn.Dense):
            w = cell.weight
            w.set_data(_normal(rng, w.shape, 1.0 / math.sqrt(w.shape[1])))
            if cell.bias is not None:
                _fill(cell.bias, 0.0)
        elif isinstance(cell, (nn.BatchNorm2d, nn.BatchNorm1d)):
            _fill(cell.gamma, 1.0)
            _fill(cell.beta, 0.0)
            _fill(cell.moving_mean, 0.0)
            _fill(cell.moving_variance, 1.0)
        elif isinstance(cell, nn.LayerNorm):
            _fill(cell.gamma, 1.0)
            _fill(cell.beta, 0.0)
    # a second pass, so that a block may override what the first pass gave its children
    for _, cell in model.cells_and_names():
        if hasattr(cell, "init_extra_weights"):
            cell.init_extra_weights(rng)
    model.init_parameters_data()  # any parameter the passes left to MindSpore (built deferred): its default
    calibrate_batchnorm(model, np.random.default_rng(calibration_seq), in_channels)
    for _, cell in model.cells_and_names():
        if hasattr(cell, "init_after_calibration"):
            cell.init_after_calibration()


_WEIGHTS_CACHE: "OrderedDict[tuple, dict[str, np.ndarray]]" = OrderedDict()
_CACHE_SIZE = 8


def seeded_weights(model: nn.Cell, key: tuple, seed: int | None, in_channels: int = 3) -> None:
    """``init_weights(model, seed)``, memoised under ``key`` (the model's configuration) when
    ``seed`` is given; the last few configurations are kept.

    A model whose parameters are a subset of a cached model's under the same
    key (a rewritten feature class after its classifier) takes them from the
    cache: the separate random streams of `init_weights` give it the same
    weights, and calibration the same statistics, as the classifier's.
    """
    if seed is None:
        init_weights(model, None, in_channels)
        return
    full_key = (key, seed, in_channels)
    params = list(model.get_parameters())
    cached = _WEIGHTS_CACHE.get(full_key)
    if cached is not None and {p.name for p in params} <= set(cached):
        for p in params:
            p.set_data(Tensor(cached[p.name]))
        _WEIGHTS_CACHE.move_to_end(full_key)
        return
    init_weights(model, seed, in_channels)
    _WEIGHTS_CACHE[full_key] = {p.name: p.asnumpy().copy() for p in params}
    while len(_WEIGHTS_CACHE) > _CACHE_SIZE:
        _WEIGHTS_CACHE.popitem(last=False)


def clear_weights_cache() -> None:
    """Forget the seeded weights `seeded_weights` keeps (a long-lived process between unrelated models)."""
    _WEIGHTS_CACHE.clear()


class _Calibrator(nn.Cell):
    """Runs ``net`` once with its BatchNorms in batch-statistics mode (own compile cache)."""

    def __init__(self, net: nn.Cell) -> None:
        super().__init__(auto_prefix=False)  # keep the wrapped parameter names
        self.net = net

    def construct(self, x: Tensor):
        return self.net(x)


def calibrate_batchnorm(model: nn.Cell, rng: np.random.Generator, in_channels: int = 3) -> None:
    """Set every BatchNorm's running mean/variance to its batch statistics on one random batch.

    Only the BatchNorm cells run in training mode (dropout and drop-path stay off),
    and their update momentum is 1 for this pass, so the running statistics become
    exactly the batch statistics.
    """
    norms = [c for _, c in model.cells_and_names() if isinstance(c, (nn.BatchNorm2d, nn.BatchNorm1d))]
    if not norms:
        return
    saved = [(bn, bn.bn_train) for bn in norms]
    model.set_train(False)
    for bn in norms:
        bn.bn_train = ops.BatchNorm(is_training=True, epsilon=bn.eps, momentum=1.0, data_format=bn.format)
        bn.set_train(True)
    batch, h, w = CALIBRATION_SHAPE
    x = Tensor(rng.standard_normal((batch, in_channels, h, w)).astype(np.float32))
    try:
        with eager():  # one run at one shape: a graph compile would cost more than the run
            _Calibrator(model)(x)
    finally:
        for bn, prim in saved:
            bn.bn_train = prim
        model.set_train(False)
