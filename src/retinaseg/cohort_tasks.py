"""The work on one scan of a cohort, in steps that can run in other processes.

:func:`read_scan` (read and check) and :func:`finish_scan` (boundaries,
measurements, outputs) need no network and run in worker processes;
segmentation runs where the model is. :func:`analyze_scan` does all three
in one place, for a Dask worker that holds its own copy of the model. Each
step returns an :class:`Outcome` instead of raising, so a bad scan becomes a
failed row and never stops the cohort; the same functions run in every mode,
so the local and the distributed run give the same numbers.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retinaseg.analysis_outputs import AnalysisOutputs, write_analysis
from retinaseg.analyze import LayerModel, check_coverage, check_fovea_in_scan, measure_volume
from retinaseg.cohort_inputs import ScanEntry, scan_checksum
from retinaseg.cohort_table import failed_row, scan_row
from retinaseg.errors import InputError, describe_exception

if TYPE_CHECKING:
    import numpy as np

    from retinaseg.models.trained import TrainedModel
    from retinaseg.volume import OctVolume

#: File in each scan's folder that records what was computed (for skipping it on a re-run) and its row.
RECORD_FILE = "cohort_record.json"


@dataclass(frozen=True)
class ScanJob:
    """One scan of a cohort and everything its workers need (picklable).

    Attributes
    ----------
    entry
        The scan.
    out_dir
        The scan's output folder.
    key
        What the result depends on besides the scan's bytes (model, its
        checksum, options); stored with the result, compared on a re-run.
    model_name
        The model's name in outputs.
    outputs
        Optional outputs to write.
    inputs
        Files the scan's outputs must never replace (the scan, the model).
    """

    entry: ScanEntry
    out_dir: Path
    key: dict[str, Any]
    model_name: str
    outputs: AnalysisOutputs
    inputs: tuple[Path, ...] = ()


@dataclass
class Outcome:
    """What a step produced: a value, or the failed row of the scan; and seconds per stage.

    Attributes
    ----------
    value
        The step's result; ``None`` when it failed.
    failed
        The scan's failed row (:func:`retinaseg.cohort_table.failed_row`).
    seconds
        ``{stage: seconds}`` of the steps so far (``read``, ``segment``,
        ``measure``, ``write``).
    checksum
        The scan's SHA-256, once known.
    """

    value: Any = None
    failed: dict[str, Any] | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    checksum: str | None = None

    def fail(self, job: ScanJob, err: BaseException) -> Outcome:
        """This outcome turned into the failed row of ``job`` for ``err``."""
        message = str(err) if isinstance(err, InputError) else f"{job.entry.path}: {describe_exception(err)}"
        self.failed = failed_row(job.entry, self.checksum, message, sum(self.seconds.values()))
        self.value = None
        return self


def read_scan(job: ScanJob) -> Outcome:
    """Checksum, read and check the scan; ``value`` is the :class:`~retinaseg.volume.OctVolume`."""
    from retinaseg.io.oct_files import read_oct

    outcome = Outcome()
    start = time.perf_counter()
    try:
        outcome.checksum = scan_checksum(job.entry.path)
        volume = read_oct(job.entry.path, **job.entry.read_options)
        if job.entry.fovea_xy_mm is not None:
            check_fovea_in_scan(job.entry.fovea_xy_mm, volume)
        outcome.value = volume
    except Exception as err:  # noqa: BLE001 - any reader failure is this scan's problem, never the cohort's
        outcome.fail(job, err)
    outcome.seconds["read"] = time.perf_counter() - start
    return outcome


def segment_scan(
    job: ScanJob, outcome: Outcome, model: TrainedModel, batch_size: int | None, inference: str, retina_rows: bool
) -> Outcome:
    """Class maps of the scan read in ``outcome``; ``value`` becomes ``(volume, labels)``.

    ``batch_size``, ``inference`` and ``retina_rows`` as for :func:`retinaseg.inference.volume.segment_volume`.
    """
    from retinaseg.inference.volume import segment_volume

    start = time.perf_counter()
    try:
        volume = outcome.value
        labels = segment_volume(
            volume, model, batch_size=batch_size, progress=False, inference=inference, retina_rows=retina_rows
        )
        outcome.value = (volume, labels)
    except Exception as err:  # noqa: BLE001 - a failed row, never a stopped cohort
        outcome.fail(job, err)
    outcome.seconds["segment"] = time.perf_counter() - start
    return outcome


def finish_scan(job: ScanJob, outcome: Outcome, volume: OctVolume, labels: np.ndarray, layers: LayerModel) -> Outcome:
    """Measure the segmented scan and write its folder; ``value`` is its cohort row."""
    start = time.perf_counter()
    try:
        measured = measure_volume(volume, labels, layers, model_name=job.model_name, fovea_xy_mm=job.entry.fovea_xy_mm)
        result = check_coverage(measured, job.entry.path)
    except Exception as err:  # noqa: BLE001 - a failed row, never a stopped cohort
        outcome.seconds["measure"] = time.perf_counter() - start
        return outcome.fail(job, err)
    outcome.seconds["measure"] = time.perf_counter() - start
    checksum = str(outcome.checksum)  # set by read_scan
    row = scan_row(job.entry, checksum, result, sum(outcome.seconds.values()))
    start = time.perf_counter()
    try:
        # The scan's folder belongs to the cohort: a stale result there (other options, a changed file) is
        # replaced, but only a folder that holds retinaseg's analysis marker (write_analysis's rules).
        record = {"key": {**job.key, "checksum_sha256": checksum}, "row": row}
        write_analysis(result, job.out_dir, overwrite=True, inputs=job.inputs, outputs=job.outputs, records={RECORD_FILE: record})
        outcome.value = row
    except Exception as err:  # noqa: BLE001 - a failed row, never a stopped cohort
        outcome.fail(job, err)
    outcome.seconds["write"] = time.perf_counter() - start
    return outcome


@functools.lru_cache(maxsize=2)
def _model(model_file: str, device: str | None) -> TrainedModel:
    """The model, loaded once per worker process and device (``None``: the worker's best)."""
    from retinaseg.inference.checkpoint import load_model

    return load_model(model_file, device)


def analyze_scan(
    job: ScanJob, model_file: str, device: str | None, batch_size: int | None, inference: str, retina_rows: bool
) -> Outcome:
    """Read, segment, measure and write one scan in this process (a Dask task); ``value`` is its row."""
    from retinaseg.analyze import layer_model

    outcome = read_scan(job)
    if outcome.failed is not None:
        return outcome
    try:
        model = _model(model_file, device)
    except Exception as err:  # noqa: BLE001 - e.g. a worker that does not see the model file
        return outcome.fail(job, err)
    outcome = segment_scan(job, outcome, model, batch_size, inference, retina_rows)
    if outcome.failed is not None:
        return outcome
    volume, labels = outcome.value
    return finish_scan(job, outcome, volume, labels, layer_model(model))
