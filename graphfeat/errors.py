"""The one exception type that graphfeat raises for bad input."""
from __future__ import annotations


class GraphfeatError(ValueError):
    """A problem with the user's input, stated so that the user can fix it.

    The CLI prints the message on stderr and exits with code 2. It subclasses
    ``ValueError`` so that argument checks (bad ``out_indices``, unknown names)
    can be caught either way.
    """


class CheckpointNotFoundError(GraphfeatError, FileNotFoundError):
    """A checkpoint path that does not exist."""
