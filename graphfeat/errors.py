"""The exception types graphfeat raises for bad input (the CLI turns each into exit code 2)."""
from __future__ import annotations

__all__ = ["CheckpointNotFoundError", "GraphfeatError", "GraphfeatNote", "OutputError", "first_line"]


class GraphfeatError(ValueError):
    """A problem with the user's input, stated so that the user can fix it.

    The CLI prints the message on stderr and exits with code 2. It subclasses
    ``ValueError`` so that argument checks (bad ``out_indices``, unknown names)
    can be caught either way.
    """


class CheckpointNotFoundError(GraphfeatError, FileNotFoundError):
    """A checkpoint path that does not exist."""


class OutputError(GraphfeatError, OSError):
    """Writing the result failed (disk full, permissions, a name too long): nothing was left behind."""


class GraphfeatNote(UserWarning):
    """Something the user should know that does not stop the command (a lost record, say); the CLI prints it as
    one line on stderr."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first non-blank line of ``exc``'s message, at most ``limit`` characters, or the exception type's
    name when the message is empty: a library's multi-line error told in one line, never an IndexError."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0].strip()[:limit] if lines else type(exc).__name__
