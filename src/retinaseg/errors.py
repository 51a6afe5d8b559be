"""Errors raised for bad user input.

Every problem with a user's file, folder, config key or argument raises
:class:`InputError`. The CLI turns it into one line on stderr and exit code 2,
so the message must name the file (or key) and say what is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from difflib import get_close_matches
from os import PathLike


class InputError(ValueError):
    """A user-supplied file, folder, key or value that cannot be used.

    Parameters
    ----------
    where
        The file path, folder or config key the problem is in.
    problem
        What is wrong, in a few words.
    """

    def __init__(self, where: str | PathLike[str], problem: str) -> None:
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{self.where}: {problem}")


def describe_exception(err: BaseException, max_chars: int = 200) -> str:
    """``"Type: message"`` of an exception on one line, shortened to ``max_chars``.

    For messages about files that a library failed to read, whose exceptions
    can be of any type and span several lines.
    """
    text = " ".join(str(err).split())
    text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."


def unknown_name(kind: str, name: object, known: Iterable[str]) -> str:
    """``"unknown <kind> 'x'; did you mean 'y'? known: ..."``: the problem for a name not among ``known``.

    For :class:`InputError` messages about a misspelt option, key or value;
    the suggestion is the closest known name, when one is close.
    """
    known = list(known)
    close = get_close_matches(str(name), known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ";"
    return f"unknown {kind} {name!r}{hint} known: {', '.join(known) or 'none'}"
