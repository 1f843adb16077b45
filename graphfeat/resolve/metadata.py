"""Strategy (a): the levels recorded by ``graphfeat export`` or a previous cut.

A recorded tensor is used when it is still in the graph and, where the level
has a fingerprint, still has the fingerprint's shape and is computed by the
same op (looking through Identity). Otherwise the level is *stale*: it is
never used silently; a `ValueFinder` finds it again by value (one run
of the file on ONNX Runtime for all stale levels), or the level is refused.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Callable

import onnx

from ..errors import GraphfeatError, GraphfeatNote
from ..graph import GraphIndex
from ..levels import LevelRecord, read_feature_record, record_levels
from ..onnxfile import holds_data, is_external
from .fingerprint import Match, Targets, find_levels, producer_op
from .modules import Resolution

#: the ``producer_name`` ``graphfeat export`` writes; the tools that drop ``metadata_props`` keep it
PRODUCER = "graphfeat"
LOST_RECORD = ("this file was written by graphfeat export but its feature record is gone (a tool dropped its "
               "metadata: Polygraphy's constant folding does); its levels are listed from the graph's structure. "
               "Give --like ORIGINAL.onnx or --reference REF.npz to recover the recorded levels by value")
STALE_HINT = ("re-export or re-cut the model, or give the export's reference (--reference REF.npz) or the "
              "original file (--like ORIGINAL.onnx) to find the level by value")


class ValueFinder:
    """Finds levels by value: against the file's fingerprints, a reference ``.npz`` or the original file.

    ``load_full`` returns the model *with its weights* (the resolver's graph is
    often a weight-free skeleton); it is called at most once, and not at all
    when the resolver's graph holds every weight in memory already (a skeleton
    of a file whose weights were too small, or not raw, to defer). A reference
    to external data does not count: the run hands ONNX Runtime the model's
    bytes, which do not say where the file was. The model runs at most
    once, for every level that needs it together.
    """

    def __init__(self, index: GraphIndex, load_full: Callable[[], onnx.ModelProto] | None = None, *,
                 reference: str | os.PathLike | None = None, like: str | os.PathLike | None = None):
        if reference is not None and like is not None:
            raise GraphfeatError("give at most one of --reference and --like")
        self.index = index
        self.load_full = load_full or (lambda: index.model)
        self.reference, self.like = reference, like
        self._targets: Targets | None | bool = False
        self._matches: dict[str, Match | GraphfeatError] = {}
        self.runs = 0

    @property
    def explicit(self) -> bool:
        """Whether the caller gave values to match against (``--reference`` / ``--like``)."""
        return self.reference is not None or self.like is not None

    def targets(self, record: dict | None) -> Targets | None:
        if self._targets is False:
            if self.reference is not None:
                self._targets = Targets.from_reference(self.reference)
            elif self.like is not None:
                self._targets = Targets.from_original(self.like)
            else:
                self._targets = Targets.from_record(record) if record else None
        return self._targets

    def _full_model(self) -> onnx.ModelProto:
        """The model to run: the resolver's own graph when it holds every weight in memory, else ``load_full()``."""
        model = self.index.model
        if all(holds_data(t) and not is_external(t) for t in model.graph.initializer):
            return model
        return self.load_full()

    def match(self, name: str, pending: list[str], record: dict | None) -> Match:
        """The match of level ``name``; the first call runs the model once for all ``pending`` levels."""
        targets = self.targets(record)
        if name not in self._matches:
            todo = [n for n in dict.fromkeys([name, *pending]) if n in targets.by_name and n not in self._matches]
            self.runs += 1
            self._matches.update(find_levels(self.index, self._full_model(), targets, todo))
        found = self._matches[name]
        if isinstance(found, GraphfeatError):
            raise found
        return found


class MetadataStrategy:
    """Strategy (a): the levels recorded by ``graphfeat export`` or a previous cut.

    Without a record in the file, an explicit reference (``ValueFinder`` with
    ``reference``/``like``) supplies the levels; they are then ``resolved_by``
    ``"reference"``. A file that ``graphfeat export`` wrote (its ``producer_name``,
    which Polygraphy, onnxsim and onnxslim keep) and that has no record, and no
    reference either, gets a `GraphfeatNote` naming the
    recovery; a file from any other exporter does not.
    """

    resolved_by = "metadata"

    def __init__(self, index: GraphIndex, finder: ValueFinder | None = None):
        self.index = index
        self.finder = finder
        record, self.complete = read_feature_record(index.model)
        if record is None and finder is not None and finder.explicit:
            targets = finder.targets(None)
            record, self.complete = targets.record, True
            self.resolved_by = "reference"
        if record is None and index.model.producer_name == PRODUCER:
            warnings.warn(LOST_RECORD, GraphfeatNote, stacklevel=2)
        self.record = record
        self.levels: list[LevelRecord] = record_levels(record)
        self.by_name = {lv.name: lv for lv in self.levels}
        self._stale: list[str] | None = None

    @property
    def available(self) -> bool:
        return bool(self.levels)

    def known_names(self) -> list[str]:
        return list(self.by_name)

    def layer_names(self) -> list[str]:
        return [lv.name for lv in self.levels]

    def current(self, level: LevelRecord) -> bool:
        """Whether the recorded tensor still holds the level: present, and (by its fingerprint) of the
        same shape and computed by the same op. Cheap: no run."""
        tensor = level.tensor
        if tensor not in self.index.tensor_names:
            return False
        fp = level.fingerprint
        if fp is None:
            return True
        op = fp.get("op")
        if op and tensor in self.index.producer and producer_op(self.index, tensor) != op:
            return False
        shape = self.index.shape(tensor)
        want = fp.get("shape")
        if shape and want and len(shape) == len(want) + 1:
            return all(not isinstance(a, int) or a == b for a, b in zip(shape[1:], want))
        return not (shape and want)

    def stale(self) -> list[str]:
        """The names of the levels whose recorded tensor does not hold them any more."""
        if self._stale is None:
            self._stale = [lv.name for lv in self.levels if not self.current(lv)]
        return self._stale

    def resolve(self, name: str) -> Resolution | None:
        level = self.by_name.get(name)
        if level is None:
            return None
        if self.current(level):
            return Resolution(name, level.tensor, self.resolved_by, level)
        why = ("which is not in the graph" if level.tensor not in self.index.tensor_names
               else "which no longer computes it (its op or shape changed)")
        targets = self.finder.targets(self.record) if self.finder is not None else None
        if targets is None or name not in targets.by_name:
            raise GraphfeatError(
                f"the graphfeat metadata maps layer '{name}' to tensor '{level.tensor}', {why}; "
                f"the metadata is stale (no fingerprint to find it by) — {STALE_HINT}")
        try:
            m = self.finder.match(name, self.stale(), self.record)
        except GraphfeatError as exc:
            raise GraphfeatError(f"the graphfeat metadata maps layer '{name}' to tensor '{level.tensor}', "
                                 f"{why}, and finding it by value failed: {exc}") from None
        found = level.updated(tensor=m.tensor, resolved_by=m.resolved_by, recorded_tensor=level.tensor,
                              match_distance=float(f"{m.distance:.3g}"))
        return Resolution(name, m.tensor, m.resolved_by, found)
