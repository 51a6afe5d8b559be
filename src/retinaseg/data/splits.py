"""Subject-level train/validation/test splits.

Images of one subject (or one child's two eyes) are strongly correlated, so
every split is made over subjects: no subject ever has images in two splits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from retinaseg.errors import InputError
from retinaseg.types import SampleSet

SPLIT_NAMES = ("train", "val", "test")
REST = "rest"

SubjectList = Sequence[str] | str | None


def check_disjoint(splits: Mapping[str, SampleSet | Iterable[str]]) -> None:
    """Check that no subject is in two splits.

    Parameters
    ----------
    splits
        Split name -> :class:`SampleSet` or iterable of subject ids.

    Raises
    ------
    InputError
        Naming the first subject found in two splits, and both splits.
    """
    owner: dict[str, str] = {}
    for name, split in splits.items():
        subjects = split.subjects() if isinstance(split, SampleSet) else split
        for subject in dict.fromkeys(subjects):
            if subject in owner:
                raise InputError(f"splits.{name}", f"subject {subject!r} is also in split {owner[subject]!r}")
            owner[subject] = name


def split_by_subject(
    sample_set: SampleSet,
    *,
    train: SubjectList,
    val: SubjectList,
    test: SubjectList,
) -> dict[str, SampleSet]:
    """Split a sample set by listed subject ids.

    Parameters
    ----------
    sample_set
        The samples to split.
    train, val, test
        List of subject ids (strings) for each split; ``[]`` for an empty
        split; ``"rest"`` or ``None`` for all subjects not listed elsewhere
        (at most one split may say so).

    Returns
    -------
    dict
        ``{"train": SampleSet, "val": SampleSet, "test": SampleSet}``; each
        keeps the order of ``sample_set``.

    Raises
    ------
    InputError
        An id that is not a string, a subject not in ``sample_set``, a
        subject listed in two splits, or more than one ``"rest"`` split.
    """
    requested = dict(zip(SPLIT_NAMES, (train, val, test)))
    rest = [name for name, subjects in requested.items() if subjects is None or subjects == REST]
    if len(rest) > 1:
        raise InputError(f"splits.{rest[1]}", f"only one split may take the remaining subjects; {rest[0]!r} already does")
    known = set(sample_set.subjects())
    listed: dict[str, list[str]] = {}
    for name, subjects in requested.items():
        if subjects is None or subjects == REST:  # the one "rest" split, filled below
            continue
        if isinstance(subjects, str):
            raise InputError(f"splits.{name}", f"expected a list of subject ids or {REST!r}, got the string {subjects!r}")
        listed[name] = [_check_subject(s, name, known) for s in subjects]
    check_disjoint(listed)
    if rest:
        taken = {s for subjects in listed.values() for s in subjects}
        listed[rest[0]] = [s for s in sample_set.subjects() if s not in taken]
    return {name: sample_set.select_subjects(listed[name]) for name in SPLIT_NAMES}


def random_subject_split(
    sample_set: SampleSet,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> dict[str, SampleSet]:
    """Split subjects at random into train, validation and test.

    The subject counts are the fractions of the number of subjects rounded by
    largest remainder (so they add up), and every split with a non-zero
    fraction gets at least one subject when there are enough subjects. The
    result depends only on the set of subject ids and ``seed``, not on the
    order of the samples.

    Parameters
    ----------
    sample_set
        The samples to split.
    fractions
        ``(train, val, test)`` fractions, each >= 0, summing to 1.
    seed
        Seed of the shuffle.

    Returns
    -------
    dict
        ``{"train": SampleSet, "val": SampleSet, "test": SampleSet}``.
    """
    weights = np.asarray(fractions, dtype=float)
    if weights.shape != (3,) or (weights < 0).any() or not np.isclose(weights.sum(), 1.0):
        raise InputError("splits.fractions", f"expected three fractions >= 0 summing to 1, got {tuple(fractions)}")
    subjects = sorted(sample_set.subjects())
    counts = _largest_remainder(weights, len(subjects))
    order = np.random.default_rng(seed).permutation(len(subjects))
    bounds = np.cumsum(counts)[:-1]
    groups = np.split(np.asarray(subjects, dtype=object)[order], bounds)
    listed = {name: list(group) for name, group in zip(SPLIT_NAMES, groups)}
    check_disjoint(listed)
    return {name: sample_set.select_subjects(listed[name]) for name in SPLIT_NAMES}


def _largest_remainder(weights: np.ndarray, total: int) -> np.ndarray:
    exact = weights * total
    counts = np.floor(exact).astype(int)
    counts[np.argsort(counts - exact, kind="stable")[: total - counts.sum()]] += 1
    # Give each wanted but empty split one subject from the largest split.
    for empty in np.flatnonzero((weights > 0) & (counts == 0)):
        largest = int(np.argmax(counts))
        if counts[largest] > 1:
            counts[largest] -= 1
            counts[empty] += 1
    return counts


def _check_subject(subject: object, split: str, known: set[str]) -> str:
    if not isinstance(subject, str):
        raise InputError(
            f"splits.{split}",
            f"subject ids must be strings, got {type(subject).__name__} {subject!r} (quote it in YAML)",
        )
    if subject not in known:
        shown = sorted(known)
        listing = ", ".join(shown[:10]) + (f" and {len(shown) - 10} more" if len(shown) > 10 else "")
        raise InputError(f"splits.{split}", f"unknown subject {subject!r}; the data has {listing}")
    return subject
