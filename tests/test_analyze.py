"""``retinaseg analyze``: a scan in; boundaries, thickness maps, ETDRS, agreement, report and exports out."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import eyepy
import numpy as np
import pytest

from retinaseg.analysis.etdrs import ETDRS_SECTORS
from retinaseg.analysis.thickness import TOTAL_RETINA
from retinaseg.analysis_outputs import write_analysis
from retinaseg.analyze import analyze_file, analyze_volume, layer_model
from retinaseg.conventions import (
    DUKE_BOUNDARY_NAMES,
    DUKE_CLASS_NAMES,
    INVALID_DISPLAY_VALUE,
)
from retinaseg.data.phantom import make_phantom_oct_volume
from retinaseg.data.preprocess import Preprocessing
from retinaseg.errors import InputError
from retinaseg.inference.checkpoint import load_model
from retinaseg.inference.volume import network_images, segment_volume
from retinaseg.io.heidelberg import read_vol
from retinaseg.io.images import write_image_atomic
from retinaseg.models.trained import TrainedModel
from retinaseg.training.config import load_config

from conftest import (
    GENUINE,
    HOSTILE,
    file_contents,
    needs_chromium,
    open_in_chromium,
    page_messages,
)


def _tiny_model(**evaluation: object) -> TrainedModel:
    overrides = [
        "name=tiny",
        "data.source=retinaseg",
        "data.root=unused",
        "model.options={depth: 3, base_channels: 4}",
        "evaluation.boundary_classes=[1, 2, 3, 4, 5, 6, 7, 8]",
        "evaluation.fluid_classes=[9]",
    ]
    overrides += [f"evaluation.{key}={value}" for key, value in evaluation.items()]
    config = load_config(None, overrides)
    return TrainedModel.from_config(
        config, DUKE_CLASS_NAMES, "multiclass", Preprocessing(channels="grey", clahe=False, normalize="percentile")
    ).eval()


@pytest.fixture(scope="module")
def phantom() -> tuple:
    return make_phantom_oct_volume(seed=0, n_bscans=9, with_fluid=True)


@pytest.fixture(scope="module")
def analysed(phantom: tuple):
    """The analysis of the phantom volume with its true label maps standing in for the network."""
    volume, truth = phantom
    reference = {name: truth.boundary_rows[:, k] for k, name in enumerate(DUKE_BOUNDARY_NAMES)}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("retinaseg.inference.volume.segment_volume", lambda volume, module, **kwargs: truth.labels)
        return analyze_volume(
            volume, _tiny_model(), model_name="truth", reference_px=reference, reference_name="phantom truth", progress=False
        )


@pytest.fixture(scope="module")
def written(analysed, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output folder of that analysis."""
    return write_analysis(analysed, tmp_path_factory.mktemp("written") / "analysis").parent


def test_phantom_measurements_match_the_truth(phantom: tuple, analysed) -> None:
    volume, truth = phantom
    segmentation, raster = analysed.segmentation, analysed.raster
    assert segmentation.boundaries_px.shape == (9, 8, 128) and segmentation.boundary_names == DUKE_BOUNDARY_NAMES
    steps = np.diff(segmentation.boundaries_px, axis=1)
    assert (steps[np.isfinite(steps)] >= 0).all()
    # integer boundaries of the rasterised truth vs its sub-pixel rows: within a pixel
    for row in analysed.reference.boundary_agreement:
        assert row.mad_um < volume.axial_um, row
    fovea_error_mm = np.hypot(*(np.array(raster.fovea_xy_mm) - truth.fovea_xy_mm))
    assert fovea_error_mm < 0.3
    assert [(r.layer, r.sector) for r in raster.etdrs] == [(layer, s) for layer in raster.maps_um for s in ETDRS_SECTORS]
    assert set(raster.maps_um) == {*segmentation.layer_names, TOTAL_RETINA}
    total = [r for r in raster.sector_agreement if r.layer == TOTAL_RETINA]
    assert len(total) == 9 and max(abs(r.difference_um) for r in total if np.isfinite(r.difference_um)) < volume.axial_um


def test_outputs_are_complete_and_readable(analysed, written: Path) -> None:
    out = written
    report = out / "report.html"
    assert out.name == "analysis" and report.stat().st_size > 100_000
    names = {p.name for p in out.iterdir()}
    assert {
        "report.html",
        "figures",
        "etdrs.csv",
        "thickness_maps.npz",
        "boundaries.npz",
        "summary.json",
        "phantom_volume_seed0.eye",
    } <= names
    assert len(list((out / "figures").glob("*.png"))) >= 5
    maps = np.load(out / "thickness_maps.npz")
    assert maps[TOTAL_RETINA].shape == (maps["y_mm"].size, maps["x_mm"].size)
    boundaries = np.load(out / "boundaries.npz")
    np.testing.assert_array_equal(boundaries["boundaries_px"], analysed.segmentation.boundaries_px.astype(np.float32))
    assert list(boundaries["boundary_names"]) == DUKE_BOUNDARY_NAMES
    facts = json.loads((out / "summary.json").read_text())
    assert facts["reference"] == "phantom truth" and set(facts["boundary_mad_um"]) == set(DUKE_BOUNDARY_NAMES)
    header = (out / "etdrs.csv").read_text().splitlines()[0]
    assert header == "layer,sector,mean_um,volume_mm3,coverage,n_cells"
    assert (out / "etdrs_agreement.csv").read_text().splitlines()[0] == "layer,sector,ours_um,reference_um,difference_um"
    assert (out / "boundary_agreement.csv").read_text().splitlines()[0] == "boundary,mad_um,bias_um,p95_abs_um,n_ascans"
    eye = eyepy.EyeVolume.load(out / "phantom_volume_seed0.eye")
    assert eye.shape == analysed.volume.shape


@needs_chromium
def test_the_analysis_report_opens_in_chromium_without_console_messages(written: Path, tmp_path: Path) -> None:
    dom, messages = open_in_chromium(written / "report.html", tmp_path / "profile")
    assert page_messages(messages) == []
    assert 'class="gl-container"' in dom and dom.count("<img ") >= 5


def test_existing_output_is_never_replaced_silently(analysed, tmp_path: Path) -> None:
    out = tmp_path / "analysis"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    before = file_contents(out)
    with pytest.raises(InputError, match="not empty"):
        write_analysis(analysed, out)
    assert file_contents(out) == before and [p.name for p in tmp_path.iterdir()] == ["analysis"]


def test_a_model_without_layer_order_is_refused() -> None:
    with pytest.raises(InputError, match="no layer order"):
        layer_model(_tiny_model(boundary_classes="null"))


def test_segment_volume_in_batches(phantom: tuple) -> None:
    volume, _ = phantom
    module = _tiny_model()
    one = segment_volume(volume, module, batch_size=1, progress=False)
    three = segment_volume(volume, module, batch_size=3, progress=False)
    assert one.shape == volume.shape and one.dtype == np.uint8 and one.max() < len(DUKE_CLASS_NAMES)
    np.testing.assert_array_equal(one, three)


def test_invalid_pixels_are_shown_white_to_the_network(duke_volumes_root: Path) -> None:
    volume = read_vol(duke_volumes_root / "Subject_01.vol")
    images = network_images(volume)
    invalid = np.isnan(volume.reflectance)
    assert invalid.any() and (images[invalid] == INVALID_DISPLAY_VALUE).all()


# --- the shipped model on real files -----------------------------------------------------------


def test_analyze_cli_on_a_duke_volume(duke_volumes_root: Path, run_cli, tmp_path: Path) -> None:
    out = tmp_path / "subject_06"
    code, stdout, stderr = run_cli("analyze", duke_volumes_root / "Subject_06.vol", "--out", out)
    assert code == 0, stderr
    assert "report:" in stdout and (out / "report.html").is_file()
    facts = json.loads((out / "summary.json").read_text())
    assert facts["reference"] == "stored" and facts["fovea_source"] == "automatic"
    # ETDRS total thickness vs the grader's layers stored in the file (target <= 10 µm; measured in BENCHMARKS.md)
    assert facts["total_thickness_sector_mad_um"] < 10
    assert facts["boundary_mad_um"]["ILM"] < 10 and facts["boundary_mad_um"]["BM"] < 10


def test_genuine_spectralis_scans(spectralis_vol_root: Path) -> None:
    module = load_model("duke_layers_unet")
    files = sorted(spectralis_vol_root.rglob("*.vol"))
    assert len(files) == 5
    circles = 0
    for path in files:
        volume = read_vol(path)
        result = analyze_volume(volume, module, progress=False)
        agreement = {row.boundary: row for row in result.reference.boundary_agreement}
        assert {"ILM", "BM"} <= set(agreement), path
        # the numbers (the macular DME model on peripapillary scans) are in BENCHMARKS.md
        assert agreement["ILM"].n_ascans > 0 and np.isfinite(agreement["BM"].mad_um), path
        if volume.scan_pattern == 2:
            circles += 1
            assert result.circle is not None and result.circle.reference is not None
            assert np.isfinite(result.circle.profile.sectors["global"])
        else:  # the line scan
            assert result.raster is None and "single B-scan" in result.notes[0]
    assert circles == 4


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_scan_exits_2_and_writes_nothing(case: str, spectralis_vol_root: Path, run_cli, tmp_path: Path) -> None:
    """Every damaged-file case of the .vol reader, through ``retinaseg analyze``."""
    mutate, message = HOSTILE[case]
    scan = tmp_path / "scan.vol"
    scan.write_bytes(bytes(mutate(bytearray((spectralis_vol_root / GENUINE["onh"][0]).read_bytes()))))
    out = tmp_path / "out"
    code, _, stderr = run_cli("analyze", scan, "--out", out)
    assert code == 2 and len(stderr.strip().splitlines()) == 1 and str(scan) in stderr and message in stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["scan.vol"]


def test_a_given_fovea_centres_the_grid(phantom: tuple, analysed, monkeypatch: pytest.MonkeyPatch) -> None:
    volume, truth = phantom
    monkeypatch.setattr("retinaseg.inference.volume.segment_volume", lambda volume, module, **kwargs: truth.labels)
    given = (analysed.raster.fovea_xy_mm[0] + 0.5, analysed.raster.fovea_xy_mm[1])
    moved = analyze_volume(volume, _tiny_model(), fovea_xy_mm=given, progress=False).raster
    assert moved.fovea_xy_mm == given and moved.fovea_source == "given"
    central = {r.layer: r.mean_um for r in moved.etdrs if r.sector == "C0"}
    automatic = {r.layer: r.mean_um for r in analysed.raster.etdrs if r.sector == "C0"}
    assert central["RNFL"] > automatic["RNFL"]  # off the pit, the inner retina is thicker


def test_analyze_cli_on_a_folder_of_bscan_images(duke_npy_root: Path, run_cli, tmp_path: Path) -> None:
    folder = tmp_path / "bscans"
    folder.mkdir()
    for i in (4, 5, 6):
        image = np.load(next(duke_npy_root.glob(f"DukeData/*/images/Subject_07_{i:02d}.npy")))
        write_image_atomic(folder / f"bscan_{i:02d}.png", image.astype(np.uint8))
    out = tmp_path / "out"
    code, _, stderr = run_cli("analyze", folder, "--out", out)
    assert code == 2 and "carries no geometry" in stderr and len(stderr.strip().splitlines()) == 1 and not out.exists()
    options = ["--scale-x-mm", "0.0115", "--scale-z-mm", "0.00387", "--bscan-spacing-mm", "0.12", "--laterality", "OS"]
    code, _, stderr = run_cli("analyze", folder, "--out", out, *options)
    assert code == 0, stderr
    facts = json.loads((out / "summary.json").read_text())
    assert facts["laterality"] == "OS" and facts["shape_bscans_rows_ascans"][0] == 3
    assert 150 < facts["mean_total_thickness_um"] < 600


def test_a_scan_without_visible_retina_is_reported_not_crashed(
    phantom: tuple, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    volume, truth = phantom
    monkeypatch.setattr("retinaseg.inference.volume.segment_volume", lambda volume, module, **kwargs: np.zeros_like(truth.labels))
    result = analyze_volume(volume, _tiny_model(), progress=False)
    assert np.isnan(result.segmentation.boundaries_px).all() and result.raster.fovea_xy_mm is None and not result.raster.etdrs
    assert any("fovea could not be found" in note for note in result.notes)
    out = tmp_path / "out"
    write_analysis(result, out)
    assert (out / "report.html").is_file() and not (out / "etdrs.csv").exists()
    assert json.loads((out / "summary.json").read_text())["valid_ascan_fraction"] == 0.0


def test_analyze_refuses_a_scan_where_no_retina_is_found(phantom: tuple, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    volume, truth = phantom
    scan = tmp_path / "scan.vol"
    scan.write_bytes(b"stands for the phantom")
    monkeypatch.setattr("retinaseg.io.oct_files.read_oct", lambda path, **options: volume)
    monkeypatch.setattr("retinaseg.inference.volume.segment_volume", lambda volume, module, **kwargs: np.zeros_like(truth.labels))
    with pytest.raises(InputError, match="no retina found in any B-scan") as error:
        analyze_file(scan, tmp_path / "out")
    assert error.value.where == str(scan) and sorted(p.name for p in tmp_path.iterdir()) == ["scan.vol"]


def test_stored_lines_outside_the_bscan_are_left_out_and_noted(phantom: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    volume, truth = phantom
    n, height, width = volume.shape
    ilm = np.full((n, width), 20.0, dtype=np.float32)
    ilm[0, :3] = (-5.0, 1e9, height + 1.0)  # corrupt values, not the format's invalid marker
    damaged = dataclasses.replace(volume, device_layers={"ILM": ilm})
    monkeypatch.setattr("retinaseg.inference.volume.segment_volume", lambda volume, module, **kwargs: truth.labels)
    result = analyze_volume(damaged, _tiny_model(), progress=False)
    stored_ilm = result.reference.boundaries_px["ILM"]
    assert np.isnan(stored_ilm[0, :3]).all() and np.isfinite(stored_ilm[0, 3:]).all()
    assert any("3 stored segmentation values lay outside the B-scan" in note for note in result.notes)


def test_optional_outputs_are_written_only_when_asked_for(analysed, tmp_path: Path) -> None:
    pytest.importorskip("nibabel")
    import nibabel

    from retinaseg.analysis_outputs import AnalysisOutputs

    lean = tmp_path / "lean"
    write_analysis(analysed, lean, outputs=AnalysisOutputs(report=False, eye=False))
    names = {path.name for path in lean.iterdir()}
    assert "summary.json" in names and "report.html" not in names and "figures" not in names
    assert not any(name.endswith((".eye", ".nii.gz")) for name in names)

    full = tmp_path / "nifti"
    write_analysis(analysed, full, outputs=AnalysisOutputs(report=False, eye=False, nifti=True), records={"extra.json": {"a": 1}})
    labels = nibabel.load(full / "labels.nii.gz")
    volume = analysed.volume
    assert labels.shape == (volume.shape[2], volume.shape[1], volume.shape[0])  # A-scans, rows, B-scans
    np.testing.assert_allclose(labels.header.get_zooms()[:2], (volume.scale_x_mm, volume.scale_z_mm))
    np.testing.assert_array_equal(np.asarray(labels.dataobj).transpose(2, 1, 0), analysed.segmentation.labels)
    assert (full / "bscans.nii.gz").is_file() and json.loads((full / "extra.json").read_text()) == {"a": 1}
