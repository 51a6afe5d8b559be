"""Tests for reading OCT files: retinaseg.io.oct_files (read_oct), retinaseg.io.eyepy_bridge
(from_eyepy, to_eyepy, write_eye) and retinaseg.io.bscan_folder, mostly through read_oct.

We have no genuine Heidelberg E2E file and no genuine HEYEX XML export. The
XML path is tested on a minimal export written here with exactly the tags
eyepy 0.21's ``xml_reader`` reads (``HEDX/BODY/Patient/Study/Series/Image``
with ``ImageType``, ``OphthalmicAcquisitionContext``, ``ImageData/ExamURL``
and ``Segmentation/SegLine``). The E2E path is tested only through an
``EyeVolume`` built the way eyepy's E2E importer builds one (float B-scans
with intensity transform ``"e2e"``, positions in degrees, scale unit ``px``);
the importer itself is only exercised by hostile files.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import eyepy
import numpy as np
import pytest
import tifffile
from PIL import Image

from retinaseg.errors import InputError
from retinaseg.io.eyepy_bridge import (
    E2E_MM_PER_DEG,
    from_eyepy,
    read_eyepy_file,
    to_eyepy,
    write_eye,
)
from retinaseg.io.heidelberg import read_vol
from retinaseg.io.oct_files import read_oct
from retinaseg.volume import BScanGeometry, OctVolume

from conftest import assert_same_volume

CIRCLE_VOL = "mu-biomed_retimat/data/onh.vol"
FOLDER_OPTIONS = {"scale_x_mm": 0.01, "scale_z_mm": 0.004, "bscan_spacing_mm": 0.25, "laterality": "OS"}


# --- .vol -----------------------------------------------------------------------------------


def test_read_oct_vol_equals_read_vol(duke_volumes_root: Path, spectralis_vol_root: Path) -> None:
    for path in (duke_volumes_root / "Subject_01.vol", spectralis_vol_root / CIRCLE_VOL):
        assert_same_volume(read_oct(path), read_vol(path))
    assert read_oct(spectralis_vol_root / CIRCLE_VOL).scan_pattern == 2


def test_from_eyepy_of_eyepys_vol_importer_equals_read_vol(duke_volumes_root: Path) -> None:
    # eyepy keeps the .vol floats as raw_data (its `data` is a log display): same reflectance
    path = duke_volumes_root / "Subject_05.vol"
    ours, theirs = read_vol(path), from_eyepy(eyepy.import_heyex_vol(path), source=str(path))
    assert theirs.metadata["intensity_transform"] == "vol"
    assert theirs.metadata["layer_origin"]["ILM"] == "file"
    assert_same_volume(ours, theirs, metadata=False)


# --- .eye round trips ----------------------------------------------------------------------


def test_eye_round_trip_duke_volume(duke_volumes_root: Path, tmp_path: Path) -> None:
    volume = read_vol(duke_volumes_root / "Subject_05.vol")  # OS, non-uniform B-scan spacing
    assert np.isnan(volume.reflectance).any()
    rnfl = volume.device_layers["RNFL"].copy()
    rnfl[3, 10:20] = np.nan
    layers = {"ILM": volume.device_layers["ILM"], "NFL/GCL": rnfl, "BM": volume.device_layers["BM"]}
    path = write_eye(volume, layers, tmp_path / "s05.eye")
    assert path == tmp_path / "s05.eye" and sorted(p.name for p in tmp_path.iterdir()) == ["s05.eye"]

    # what eyepy users see: .vol conventions, mm scales, our layers
    ev = eyepy.EyeVolume.load(path)
    assert ev.meta["intensity_transform"] == "vol" and ev.meta["scale_unit"] == "mm"
    assert (ev.scale_x, ev.scale_y) == (0.0115, 0.00387)
    assert ev.scale_z == pytest.approx(volume.bscan_spacing_mm().mean())
    assert ev.laterality == "OS" and list(ev.layers) == ["ILM", "NFL/GCL", "BM"]
    raw = ev.raw_data
    assert (raw[np.isnan(volume.reflectance)] == np.finfo(np.float32).max).all()
    assert ev.data.dtype == np.uint8  # eyepy's display mapping works on it
    assert ev[0].meta["start_pos"] == volume.bscan_geometry[0].start_xy_mm

    back = read_oct(path)
    assert back.source == str(path)
    assert back.metadata["layer_origin"] == {"ILM": "retinaseg", "NFL/GCL": "retinaseg", "BM": "retinaseg"}
    assert back.metadata["slo_field_size_deg"] == 30
    expected = OctVolume(**{**volume.__dict__, "device_layers": layers})
    assert_same_volume(back, expected, metadata=False)
    assert np.isnan(back.device_layers["NFL/GCL"][3, 10:20]).all()
    np.testing.assert_array_equal(back.display_bscans(), volume.display_bscans())
    np.testing.assert_allclose(back.bscan_spacing_mm(), volume.bscan_spacing_mm(), rtol=0, atol=1e-12)


def test_eye_round_trip_circle_scan(spectralis_vol_root: Path, tmp_path: Path) -> None:
    volume = read_vol(spectralis_vol_root / CIRCLE_VOL)
    assert volume.bscan_geometry[0].shift_ascans != 0
    back = read_oct(write_eye(volume, {"ILM": volume.device_layers["ILM"]}, tmp_path / "onh.eye"))
    assert back.scan_pattern == 2 and back.bscan_geometry[0].is_circle
    assert_same_volume(
        back, OctVolume(**{**volume.__dict__, "device_layers": {"ILM": volume.device_layers["ILM"]}}), metadata=False
    )
    np.testing.assert_allclose(back.ascan_positions_mm(), volume.ascan_positions_mm(), rtol=0, atol=1e-12)


def test_write_eye_refuses_overwrite_and_bad_paths(duke_volumes_root: Path, tmp_path: Path) -> None:
    volume = read_vol(duke_volumes_root / "Subject_01.vol")
    path = tmp_path / "v.eye"
    path.write_bytes(b"keep")
    with pytest.raises(InputError, match="already exists"):
        write_eye(volume, {}, path)
    assert path.read_bytes() == b"keep"
    write_eye(volume, {}, path, overwrite=True)
    assert read_oct(path).device_layers == {}
    with pytest.raises(InputError, match=r"\.eye"):
        write_eye(volume, {}, tmp_path / "v.zip")
    with pytest.raises(InputError, match="folder not found"):
        write_eye(volume, {}, tmp_path / "missing" / "v.eye")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.eye"]  # no temporary files left
    with pytest.raises(ValueError, match="shape"):
        to_eyepy(volume, {"ILM": np.zeros((2, 3))})


# --- folders of B-scan images ----------------------------------------------------------------


def _bscans_8bit(n: int) -> np.ndarray:
    """``n`` 16x16 uint8 B-scans, each holding every value 0..255 once."""
    rng = np.random.default_rng(0)
    return np.stack([rng.permutation(256).astype(np.uint8).reshape(16, 16) for _ in range(n)])


def _write_pngs(folder: Path, images: np.ndarray) -> None:
    folder.mkdir(exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"bscan_{i:02d}.png")


def test_bscan_folder_geometry_and_exact_display(tmp_path: Path) -> None:
    images = _bscans_8bit(3)
    _write_pngs(tmp_path / "scan", images)
    volume = read_oct(tmp_path / "scan", **{**FOLDER_OPTIONS, "laterality": "os"})
    assert volume.shape == (3, 16, 16) and volume.reflectance.dtype == np.float32
    np.testing.assert_array_equal(volume.display_bscans(), images)
    np.testing.assert_allclose(volume.reflectance, (images / 255.0) ** 4, rtol=1e-6)
    assert (volume.laterality, volume.scan_pattern, volume.slo, volume.scale_x_mm, volume.scale_z_mm) == (
        "OS",
        3,
        None,
        0.01,
        0.004,
    )
    # raster of horizontal lines, first image at the top
    assert [g.start_xy_mm for g in volume.bscan_geometry] == [(0.0, 0.0), (0.0, 0.25), (0.0, 0.5)]
    assert [g.end_xy_mm for g in volume.bscan_geometry] == [(0.16, 0.0), (0.16, 0.25), (0.16, 0.5)]
    np.testing.assert_allclose(volume.bscan_spacing_mm(), [0.25, 0.25])
    np.testing.assert_allclose(volume.ascan_positions_mm()[1, 4], [0.04, 0.25])
    assert volume.metadata["bscan_files"] == ["bscan_00.png", "bscan_01.png", "bscan_02.png"]


def test_bscan_folder_rgb_and_16_bit(tmp_path: Path) -> None:
    image = _bscans_8bit(1)[0]
    (tmp_path / "rgb").mkdir()
    Image.fromarray(np.repeat(image[..., None], 3, axis=2)).save(tmp_path / "rgb" / "b.png")
    assert np.array_equal(read_oct(tmp_path / "rgb", **FOLDER_OPTIONS).display_bscans()[0], image)

    # 16-bit: v >> 8, which gives u back from the usual expansion 257 u
    (tmp_path / "tif").mkdir()
    wide = image.astype(np.uint16) * 257
    wide[0, :3] = [255, 256, 65535]
    tifffile.imwrite(tmp_path / "tif" / "b.tif", wide)
    volume = read_oct(tmp_path / "tif", **FOLDER_OPTIONS)
    expected = image.copy()
    expected[0, :3] = [0, 1, 255]
    np.testing.assert_array_equal(volume.display_bscans()[0], expected)
    assert volume.scan_pattern == 1 and volume.bscan_spacing_mm().shape == (0,)


@pytest.mark.parametrize("missing", sorted(FOLDER_OPTIONS))
def test_bscan_folder_needs_every_option(tmp_path: Path, missing: str) -> None:
    _write_pngs(tmp_path / "scan", _bscans_8bit(2))
    options = {k: v for k, v in FOLDER_OPTIONS.items() if k != missing}
    with pytest.raises(InputError, match=missing) as info:
        read_oct(tmp_path / "scan", **options)
    assert info.value.where == str(tmp_path / "scan")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("scale_x_mm", 11.5, "micrometres"),
        ("bscan_spacing_mm", 0.0, r"not in \(0"),
        ("scale_z_mm", float("nan"), "not in"),
        ("laterality", "right", "'OD'"),
    ],
)
def test_bscan_folder_bad_options(tmp_path: Path, option: str, value: object, message: str) -> None:
    _write_pngs(tmp_path / "scan", _bscans_8bit(1))
    with pytest.raises(InputError, match=message):
        read_oct(tmp_path / "scan", **{**FOLDER_OPTIONS, option: value})


def test_bscan_folder_bad_contents(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images")
    with pytest.raises(InputError, match="no B-scan images") as info:
        read_oct(tmp_path / "empty", **FOLDER_OPTIONS)
    assert info.value.where == str(tmp_path / "empty")

    _write_pngs(tmp_path / "sizes", _bscans_8bit(2))
    Image.fromarray(np.zeros((16, 17), np.uint8)).save(tmp_path / "sizes" / "bscan_02.png")
    with pytest.raises(InputError, match="bscan_02.png is 16x17 pixels but bscan_00.png is 16x16"):
        read_oct(tmp_path / "sizes", **FOLDER_OPTIONS)

    (tmp_path / "float").mkdir()
    tifffile.imwrite(tmp_path / "float" / "b.tif", np.zeros((4, 4), np.float32))
    with pytest.raises(InputError, match="8- or 16-bit"):
        read_oct(tmp_path / "float", **FOLDER_OPTIONS)


def test_bscan_folder_eye_round_trip_drops_blank_localizer(tmp_path: Path) -> None:
    _write_pngs(tmp_path / "scan", _bscans_8bit(3))
    volume = read_oct(tmp_path / "scan", **FOLDER_OPTIONS)
    path = write_eye(volume, {}, tmp_path / "scan.eye")
    localizer = eyepy.EyeVolume.load(path).localizer
    # blank stand-in of A-scan-pitch pixels reaching the last B-scan's end point (0.16, 0.5) mm
    assert localizer.shape == (51, 17) and localizer.scale_x == 0.01
    assert_same_volume(read_oct(path), volume, metadata=False)


# --- HEYEX XML (hand-written export) ----------------------------------------------------------


def _xml_image(kind: str, name: str, context: str, extra: str = "") -> str:
    return (
        f"<Image><ImageType><Type>{kind}</Type></ImageType>"
        f"<OphthalmicAcquisitionContext>{context}</OphthalmicAcquisitionContext>"
        f"<ImageData><ExamURL>file:///C:\\XMLDATA\\{name}</ExamURL></ImageData>{extra}</Image>"
    )


def _write_heyex_xml(folder: Path, bscans: np.ndarray, lines: dict[str, np.ndarray], laterality: str) -> Path:
    """Minimal HEYEX XML export: localizer + B-scan PNGs, start/end in mm, segmentation lines."""
    folder.mkdir()
    _, height, width = bscans.shape
    localizer = np.arange(64 * 48, dtype=np.uint32).reshape(48, 64).astype(np.uint8)
    Image.fromarray(localizer).save(folder / "slo.png")
    images = [_xml_image("LOCALIZER", "slo.png", "<Width>64</Width><Height>48</Height><ScaleX>0.1</ScaleX><ScaleY>0.12</ScaleY>")]
    for i, bscan in enumerate(bscans):
        Image.fromarray(bscan).save(folder / f"b{i}.png")
        y = 4.0 - 0.5 * i  # B-scan 0 lowest on the fundus, as Heidelberg stores volumes
        segmentation = "".join(
            f"<SegLine><Name>{name}</Name><Array>{' '.join(f'{v:g}' for v in rows[i])}</Array></SegLine>"
            for name, rows in lines.items()
        )
        images.append(
            _xml_image(
                "OCT",
                f"b{i}.png",
                f"<Width>{width}</Width><Height>{height}</Height><ScaleX>0.2</ScaleX><ScaleY>0.0039</ScaleY>"
                f"<ImageQuality>{25 + i}</ImageQuality>"
                f"<Start><Coord><X>1.5</X><Y>{y}</Y></Coord></Start><End><Coord><X>4.7</X><Y>{y}</Y></Coord></End>",
                f"<Segmentation><NumSegmentations>{len(lines)}</NumSegmentations>{segmentation}</Segmentation>",
            )
        )
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?><HEDX><BODY><SWVersion><Version>5.1</Version></SWVersion>'
        f"<Patient><Study><Series><Laterality>{laterality}</Laterality>{''.join(images)}"
        "</Series></Study></Patient></BODY></HEDX>"
    )
    path = folder / "export.xml"
    path.write_text(xml, encoding="utf-8")
    return path


def test_heyex_xml_export(tmp_path: Path) -> None:
    bscans = _bscans_8bit(3)
    ilm = np.full((3, 16), 3.5, np.float32)
    ilm[1, 2] = 3.0e38  # HEYEX's invalid marker
    path = _write_heyex_xml(tmp_path / "xml", bscans, {"ILM": ilm, "BM": ilm + 8}, laterality="L")
    volume = read_oct(path)
    np.testing.assert_array_equal(volume.display_bscans(), bscans)
    assert (volume.scale_x_mm, volume.scale_z_mm, volume.laterality, volume.scan_pattern) == (0.2, 0.0039, "OS", 3)
    assert [g.start_xy_mm for g in volume.bscan_geometry] == [(1.5, 4.0), (1.5, 3.5), (1.5, 3.0)]
    assert [g.end_xy_mm for g in volume.bscan_geometry] == [(4.7, 4.0), (4.7, 3.5), (4.7, 3.0)]
    assert [g.quality for g in volume.bscan_geometry] == [25.0, 26.0, 27.0]
    np.testing.assert_allclose(volume.bscan_spacing_mm(), [0.5, 0.5])
    assert volume.slo is not None and volume.slo.shape == (48, 64) and volume.slo_scale_xy_mm == (0.1, 0.12)
    assert list(volume.device_layers) == ["ILM", "BM"]
    expected_ilm = np.where(ilm > 1e30, np.nan, ilm)
    np.testing.assert_array_equal(volume.device_layers["ILM"], expected_ilm)
    np.testing.assert_array_equal(volume.device_layers["BM"], expected_ilm + 8)
    assert volume.metadata["intensity_transform"] == "default"


def test_heyex_xml_that_eyepy_cannot_read(tmp_path: Path) -> None:
    # eyepy 0.21 fails on single-B-scan exports (B-scan spacing of one B-scan) and on missing images
    single = _write_heyex_xml(tmp_path / "one", _bscans_8bit(1), {}, laterality="R")
    with pytest.raises(InputError, match="cannot read HEYEX XML export"):
        read_oct(single)
    missing = _write_heyex_xml(tmp_path / "gone", _bscans_8bit(2), {}, laterality="R")
    (tmp_path / "gone" / "b1.png").unlink()
    with pytest.raises(InputError, match="b1.png"):
        read_oct(missing)
    with pytest.raises(InputError, match=r"holds a HEYEX XML export \(export.xml\)"):
        read_oct(tmp_path / "gone", **FOLDER_OPTIONS)


# --- E2E convention (synthetic EyeVolume shaped like eyepy's E2E importer output) --------------


def test_from_eyepy_e2e_conventions() -> None:
    data = np.full((2, 4, 32), 0.5, np.float32)
    data[0, 0, :3] = 1.999  # empty-region code
    bscan_meta = [
        eyepy.EyeBscanMeta(start_pos=(-10.0, 5.0 - i), end_pos=(10.0, 5.0 - i), pos_unit="°", scale_y=0.0039, scan_pattern=3)
        for i in range(2)
    ]
    meta = eyepy.EyeVolumeMeta(
        scale_x=1, scale_y=1, scale_z=1, scale_unit="px", bscan_meta=bscan_meta, laterality="82", intensity_transform="e2e"
    )
    localizer = eyepy.EyeEnface(
        np.zeros((96, 96), np.uint8), eyepy.EyeEnfaceMeta(scale_x=30 / 96, scale_y=30 / 96, scale_unit="°", laterality="82")
    )
    volume = from_eyepy(eyepy.EyeVolume(data, meta, localizer=localizer), source="scan.e2e")
    assert volume.laterality == "OD" and volume.scan_pattern == 3 and volume.scale_z_mm == 0.0039
    assert volume.scale_x_mm == pytest.approx(20 * E2E_MM_PER_DEG / 32)
    assert np.isnan(volume.reflectance[0, 0, :3]).all() and np.nansum(np.isnan(volume.reflectance)) == 3
    assert (volume.reflectance[~np.isnan(volume.reflectance)] == 0.5).all()
    # degrees from the centre of a 30° localizer -> mm from its top-left corner
    np.testing.assert_allclose(volume.bscan_geometry[1].start_xy_mm, (5 * E2E_MM_PER_DEG, 19 * E2E_MM_PER_DEG))
    np.testing.assert_allclose(volume.slo_scale_xy_mm, (30 / 96 * E2E_MM_PER_DEG,) * 2)


def test_from_eyepy_e2e_circle_scan_pitch_follows_the_circumference() -> None:
    """eyepy gives an E2E circle as start point and centre: the A-scans run along 2 pi r, not r."""
    width, radius_deg = 768, 6.0
    bscan_meta = [
        eyepy.EyeBscanMeta(start_pos=(radius_deg, 0.0), end_pos=(0.0, 0.0), pos_unit="°", scale_y=0.0039, scan_pattern=2)
    ]
    meta = eyepy.EyeVolumeMeta(
        scale_x=1, scale_y=1, scale_z=0, scale_unit="px", bscan_meta=bscan_meta, laterality="76", intensity_transform="e2e"
    )
    localizer = eyepy.EyeEnface(
        np.zeros((96, 96), np.uint8), eyepy.EyeEnfaceMeta(scale_x=30 / 96, scale_y=30 / 96, scale_unit="°", laterality="76")
    )
    data = np.random.default_rng(0).uniform(0.01, 0.5, (1, 8, width)).astype(np.float32)
    volume = from_eyepy(eyepy.EyeVolume(data, meta, localizer=localizer), source="circle.e2e")
    assert volume.scan_pattern == 2 and volume.bscan_geometry[0].is_circle
    assert volume.scale_x_mm == pytest.approx(2 * np.pi * radius_deg * E2E_MM_PER_DEG / width)


# --- hostile and unusable inputs ---------------------------------------------------------------


def _bad_inputs(folder: Path) -> list[tuple[Path, str]]:
    rng = np.random.default_rng(1)
    junk = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    cases = {"junk.e2e": junk, "junk.xml": junk, "empty.eye": b"", "empty.e2e": b"", "scan.oct": b"x", "junk.vol": junk}
    for name, content in cases.items():
        (folder / name).write_bytes(content)
    with zipfile.ZipFile(folder / "foreign.eye", "w") as archive:
        archive.writestr("readme.txt", "not an eyepy volume")
    return [
        (folder / "junk.e2e", "cannot read HEYEX E2E"),
        (folder / "empty.e2e", "cannot read HEYEX E2E"),
        (folder / "junk.xml", "cannot read HEYEX XML"),
        (folder / "empty.eye", "cannot read eyepy"),
        (folder / "foreign.eye", "cannot read eyepy"),
        (folder / "scan.oct", "unknown OCT file type"),
        (folder / "junk.vol", "not a Heidelberg .vol"),
        (folder / "missing.vol", "not found"),
    ]


def test_hostile_files_raise_input_error_naming_the_path(tmp_path: Path) -> None:
    for path, message in _bad_inputs(tmp_path):
        with pytest.raises(InputError, match=message) as info:
            read_oct(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_read_eyepy_file_reads_only_eyepy_files(duke_volumes_root: Path) -> None:
    path = duke_volumes_root / "Subject_01.vol"  # read by read_vol, not eyepy
    with pytest.raises(InputError, match=r"eyepy files read here end in \.e2e, \.xml, \.eye") as info:
        read_eyepy_file(path)
    assert info.value.where == str(path)


def test_truncated_eye_file(duke_volumes_root: Path, tmp_path: Path) -> None:
    path = write_eye(read_vol(duke_volumes_root / "Subject_01.vol"), {}, tmp_path / "v.eye")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match="cannot read eyepy .eye file") as info:
        read_oct(path)
    assert info.value.where == str(path)


def test_geometry_options_are_refused_for_files(duke_volumes_root: Path) -> None:
    with pytest.raises(InputError, match="laterality only apply to a folder"):
        read_oct(duke_volumes_root / "Subject_01.vol", laterality="OD")


def _tiny_volume(value: float) -> OctVolume:
    return OctVolume(
        reflectance=np.full((1, 4, 5), value, np.float32),
        scale_x_mm=0.01,
        scale_z_mm=0.004,
        bscan_geometry=[BScanGeometry(start_xy_mm=(0.0, 0.0), end_xy_mm=(0.05, 0.0), quality=np.nan)],
        scan_pattern=1,
        laterality="OD",
    )


def test_unusable_eyepy_volumes(tmp_path: Path) -> None:
    path = write_eye(_tiny_volume(np.nan), {}, tmp_path / "nan.eye")
    with pytest.raises(InputError, match="no valid pixel") as info:
        read_oct(path)
    assert info.value.where == str(path)

    ev = to_eyepy(_tiny_volume(0.5), {})
    ev.set_intensity_transform("angio")
    with pytest.raises(InputError, match="angiography"):
        from_eyepy(ev, "a.eye")
    ev.set_intensity_transform("default")  # float data that are not 8-bit display values
    with pytest.raises(InputError, match="not 8-bit display values"):
        from_eyepy(ev, "b.eye")
    ev.set_intensity_transform("vol")
    ev.meta["scale_unit"] = "pixel"
    with pytest.raises(InputError, match="no physical pixel size"):
        from_eyepy(ev)


# --- implausible and oversized inputs: the same rules for every reader ----------------------------


def _png_header(path: Path, height: int, width: int) -> None:
    """A grey PNG whose header declares ``height x width`` pixels but holds one row: decoding it would fail."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">2I5B", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(width + 1))) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        ([(5000, 512)], "1 B-scans x 5000 rows x 512 A-scans"),
        ([(16, 10_000)] * 2, "2 B-scans x 16 rows x 10000 A-scans"),
        ([(4096, 4096)] * 30, "M voxels are read"),  # 2 GB of B-scans, each under the image limits
        ([(16, 16)] * 2049, "2049 B-scans"),
        ([(9000, 9000)], "9000 x 9000"),  # above the image limits too
        ([(16, 200_000)], "16 x 200000"),
    ],
)
def test_bscan_folder_sizes_are_checked_before_decoding(tmp_path: Path, shapes: list, message: str) -> None:
    folder = tmp_path / "scan"
    folder.mkdir()
    for i, (height, width) in enumerate(shapes):
        _png_header(folder / f"b{i:02d}.png", height, width)
    with pytest.raises(InputError, match=message) as info:
        read_oct(folder, **FOLDER_OPTIONS)
    assert "\n" not in str(info.value)


def test_bscan_folder_geometry_must_fit_a_fundus_field(tmp_path: Path) -> None:
    # 30 B-scans 2 mm apart (each a plausible spacing) span 58 mm: refused before decoding
    folder = tmp_path / "scan"
    folder.mkdir()
    for i in range(30):
        _png_header(folder / f"b{i:02d}.png", 16, 16)
    with pytest.raises(InputError, match="y 0..58 mm"):
        read_oct(folder, **{**FOLDER_OPTIONS, "bscan_spacing_mm": 2.0})
    with pytest.raises(InputError, match=r"scale_x_mm = 1e\+300 mm is not in"):
        read_oct(folder, **{**FOLDER_OPTIONS, "scale_x_mm": 1e300})


@pytest.mark.parametrize(("value", "message"), [(0, "every valid pixel is 0"), (255, "every valid pixel is 1")])
def test_blank_bscan_folders_are_refused(tmp_path: Path, value: int, message: str) -> None:
    _write_pngs(tmp_path / "scan", np.full((2, 16, 16), value, np.uint8))
    with pytest.raises(InputError, match=message) as info:
        read_oct(tmp_path / "scan", **FOLDER_OPTIONS)
    assert info.value.where == str(tmp_path / "scan")


def _eyepy_volume() -> eyepy.EyeVolume:
    return to_eyepy(_tiny_volume(0.5), {})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scale_x": 1e300}, r"A-scan pitch = 1e\+300 mm"),
        ({"scale_y": 0.0}, "axial pixel size = 0 mm"),
        ({"scale_z": 120.0}, "B-scan distance scale_z = 120 mm"),
        ({"scan_pattern": 9}, "unknown scan pattern 9"),
        ({"scan_pattern": "circle"}, "unknown scan pattern 'circle'"),
        ({"scan_pattern": 2}, "circumference of 0.3142 mm .* not a circle scan"),  # a line labelled as a circle
    ],
)
def test_implausible_eyepy_meta_is_refused_before_conversion(change: dict, message: str) -> None:
    ev = _eyepy_volume()
    ev.set_intensity_transform("angio")  # would be refused too, but only after the meta
    ev.meta.update(change)
    with pytest.raises(InputError, match=message):
        from_eyepy(ev, "scan.eye")


def test_eyepy_positions_far_away_and_blank_data_are_refused(tmp_path: Path) -> None:
    ev = _eyepy_volume()
    ev.meta["bscan_meta"][0]["end_pos"] = (10_000.0, 0.0)  # the last A-scan 10 m from the first
    with pytest.raises(InputError, match="A-scan positions span"):
        from_eyepy(ev, "scan.eye")
    path = write_eye(_tiny_volume(0.0), {}, tmp_path / "black.eye")
    with pytest.raises(InputError, match="every valid pixel is 0") as info:
        read_oct(path)
    assert info.value.where == str(path)


@pytest.mark.parametrize(("shape", "message"), [((4096, 4096, 4096), "4096 B-scans"), ((1, 1, 10**6), "A-scans")])
def test_eye_archive_declaring_a_huge_volume_is_refused_unopened(tmp_path: Path, shape: tuple, message: str) -> None:
    # an .eye whose raw_volume.npy header declares a huge array (a zip bomb would unpack to it)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
    path = tmp_path / "bomb.eye"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("raw_volume.npy", header.getvalue())
        archive.writestr("meta.json", "{}")
    with pytest.raises(InputError, match=message) as info:
        read_oct(path)
    assert info.value.where == str(path)


def test_eye_archive_unpacking_to_gigabytes_is_refused_unopened(tmp_path: Path) -> None:
    path = write_eye(_tiny_volume(0.5), {}, tmp_path / "scan.eye")
    data = bytearray(path.read_bytes())
    # the central directory's uncompressed size of the first member: 4 GiB, which zipfile would unpack
    struct.pack_into("<I", data, data.index(b"PK\x01\x02") + 24, 2**32 - 1)
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"eyepy archive unpacks to 42949\d{5} bytes"):
        read_oct(path)
