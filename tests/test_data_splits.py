"""Subject-level splits never share a subject."""

from __future__ import annotations

import numpy as np
import pytest

from retinaseg.data.splits import check_disjoint, random_subject_split, split_by_subject
from retinaseg.errors import InputError
from retinaseg.types import Sample, SampleSet


def _set(subjects=("s1", "s2", "s3", "s4", "s5", "s6"), per_subject=2, reverse=False) -> SampleSet:
    samples = [Sample(id=f"{s}_{i}", subject=s, image=np.zeros((2, 2), np.uint8)) for s in subjects for i in range(per_subject)]
    return SampleSet(samples=samples[::-1] if reverse else samples, class_names=["bg", "fg"])


def test_split_by_listed_subjects_with_rest():
    splits = split_by_subject(_set(), train=["s1", "s3"], val=["s2"], test="rest")
    assert splits["train"].subjects() == ["s1", "s3"]
    assert splits["val"].subjects() == ["s2"]
    assert splits["test"].subjects() == ["s4", "s5", "s6"]
    assert [s.id for s in splits["train"].samples] == ["s1_0", "s1_1", "s3_0", "s3_1"]  # order kept
    assert splits["train"].class_names == ["bg", "fg"]


def test_none_means_rest_and_empty_list_means_empty():
    splits = split_by_subject(_set(), train=None, val=[], test=["s6"])
    assert splits["train"].subjects() == ["s1", "s2", "s3", "s4", "s5"]
    assert len(splits["val"]) == 0


def test_unknown_subject_is_named():
    with pytest.raises(InputError, match="'s9'") as err:
        split_by_subject(_set(), train=["s1", "s9"], val=[], test="rest")
    assert err.value.where == "splits.train"


def test_subject_in_two_splits_is_named():
    with pytest.raises(InputError, match="'s2'.*'train'"):
        split_by_subject(_set(), train=["s1", "s2"], val=["s2"], test="rest")


def test_other_bad_requests():
    with pytest.raises(InputError, match="only one split"):
        split_by_subject(_set(), train="rest", val=None, test=["s1"])
    with pytest.raises(InputError, match="strings"):
        split_by_subject(_set(), train=[1], val=[], test="rest")
    with pytest.raises(InputError, match="list of subject ids"):
        split_by_subject(_set(), train="s1", val=[], test="rest")


def test_check_disjoint_accepts_sets_and_lists():
    data = _set()
    check_disjoint({"a": data.select_subjects(["s1"]), "b": ["s2", "s2"]})
    with pytest.raises(InputError, match="'s1'"):
        check_disjoint({"a": data.select_subjects(["s1"]), "b": ["s1"]})


def test_random_split_counts_disjoint_and_complete():
    splits = random_subject_split(_set(), (0.7, 0.15, 0.15), seed=0)
    sizes = [len(splits[name].subjects()) for name in ("train", "val", "test")]
    assert sizes == [4, 1, 1]  # 4.2, 0.9, 0.9 by largest remainder
    check_disjoint(splits)
    assert sorted(subject for name in splits for subject in splits[name].subjects()) == ["s1", "s2", "s3", "s4", "s5", "s6"]


def test_random_split_is_deterministic_and_order_independent():
    subjects = tuple(f"p{i:02d}" for i in range(20))
    first = random_subject_split(_set(subjects), seed=5)
    again = random_subject_split(_set(subjects, reverse=True), seed=5)
    assert all(set(first[n].subjects()) == set(again[n].subjects()) for n in first)
    other = random_subject_split(_set(subjects), seed=6)
    assert set(first["test"].subjects()) != set(other["test"].subjects())


def test_random_split_gives_each_wanted_split_a_subject():
    splits = random_subject_split(_set(("a", "b", "c")), (0.9, 0.05, 0.05))
    assert [len(splits[n].subjects()) for n in ("train", "val", "test")] == [1, 1, 1]
    none_for_val = random_subject_split(_set(), (0.8, 0.0, 0.2))
    assert len(none_for_val["val"]) == 0


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.7, 0.2, 0.2), (1.2, -0.1, -0.1)])
def test_random_split_rejects_bad_fractions(fractions):
    with pytest.raises(InputError, match="fractions"):
        random_subject_split(_set(), fractions)
