"""Strategy (a): the levels recorded by ``graphfeat export`` or a previous cut."""
from __future__ import annotations

from ..errors import GraphfeatError
from ..graph import GraphIndex
from ..levels import read_feature_record
from .modules import Resolution


class MetadataStrategy:
    """Strategy (a): the levels recorded by ``graphfeat export`` or a previous cut."""

    resolved_by = "metadata"

    def __init__(self, index: GraphIndex):
        self.index = index
        record, self.complete = read_feature_record(index.model)
        self.record = record
        self.levels: list[dict] = list(record["levels"]) if record else []
        self.by_name = {lv["name"]: lv for lv in self.levels}

    @property
    def available(self) -> bool:
        return bool(self.levels)

    def known_names(self) -> list[str]:
        return list(self.by_name)

    def layer_names(self) -> list[str]:
        return [lv["name"] for lv in self.levels]

    def resolve(self, name: str) -> Resolution | None:
        level = self.by_name.get(name)
        if level is None:
            return None
        if level["tensor"] not in self.index.tensor_names:
            raise GraphfeatError(
                f"the graphfeat metadata maps layer '{name}' to tensor '{level['tensor']}', "
                "which is not in the graph; the metadata is stale — re-export or re-cut the model"
            )
        return Resolution(name, level["tensor"], self.resolved_by, level)
