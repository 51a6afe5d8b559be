"""``retinaseg predict``: segment image files with a trained model.

For each input ``NAME.ext`` the output folder receives ``NAME_classes.png``
(uint8 class index per pixel), ``NAME_colour.png`` (classes in the palette),
``NAME_overlay.png`` (colours over the image) and, on request, the class
probabilities: ``NAME_probability.png`` (8-bit foreground probability) for
binary tasks or ``NAME_probabilities.npy`` (float16, ``(C, H, W)``) otherwise.
``legend.png`` and ``palette.json`` document the colours.

Fundus models (those that read the green channel) see the camera's circular
field of view: it is estimated per photo (:func:`retinaseg.data.fov.estimate_fov`,
as for training and scoring), written as ``NAME_fov.png`` (255 inside), and
nothing outside it is called a vessel (class 0, probability 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from rich.progress import track

from retinaseg.analysis.layer_order import model_class_map
from retinaseg.data.fov import estimate_fov
from retinaseg.data.preprocess import prepare_image
from retinaseg.errors import InputError
from retinaseg.inference.checkpoint import load_model
from retinaseg.io.atomic import atomic_path
from retinaseg.io.folders import image_files
from retinaseg.io.images import image_size, read_image, write_image_atomic
from retinaseg.io.limits import MAX_IMAGE_SIDE, check_regular_file
from retinaseg.io.model_files import resolve_model_file
from retinaseg.io.output import PREDICTION, check_output_dir, staged_output_dir
from retinaseg.io.records import write_json
from retinaseg.report.palette import colorize, legend_image, overlay, palette_for

#: Input channel choice that marks a fundus model: the green channel shows vessels best.
FUNDUS_CHANNELS = "green"


def collect_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Image files named directly or found (non-recursively) in named folders."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = list(image_files(item).values())
            if not found:
                raise InputError(item, "folder holds no image files")
            files += found
        else:
            files.append(check_regular_file(item, "image file"))
    stems = [f.stem for f in files]
    clashes = sorted({s for s in stems if stems.count(s) > 1})
    if clashes:
        raise InputError(clashes[0], "several inputs share this file name; outputs would collide")
    return files


def _check_roi_size(roi_size: tuple[int, int] | None) -> None:
    if roi_size is not None and not all(1 <= int(side) <= MAX_IMAGE_SIDE for side in roi_size):
        raise InputError(
            "--roi-size", f"window sides must be whole numbers of pixels in 1..{MAX_IMAGE_SIDE}, got {tuple(roi_size)}"
        )


def predict_files(
    model: str | Path,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    probabilities: bool = False,
    roi_size: tuple[int, int] | None = None,
    overwrite: bool = False,
    device: str | None = None,
) -> list[Path]:
    """Segment every input image; see the module docstring for the outputs.

    Parameters
    ----------
    model
        A shipped model name, a ``.pt`` weight file, a ``.ckpt`` checkpoint or an ``.onnx`` export
        (:func:`~retinaseg.inference.checkpoint.load_model`).
    inputs
        Image files and/or folders of images.
    out_dir
        Output folder, written atomically; must not exist unless ``overwrite``.
    probabilities
        Also write class probabilities.
    roi_size
        Sliding-window size ``(h, w)`` for images larger than the network was
        trained on; default: the model's ``evaluation.roi_size``.
    device
        Torch device; default: :func:`~retinaseg.inference.checkpoint.default_device`.

    Returns
    -------
    list of Path
        The class-index PNGs written, in input order.
    """
    out_dir = Path(out_dir)
    files = collect_inputs(inputs)
    model_file = resolve_model_file(model)
    sources = [*inputs, model_file]
    check_output_dir(out_dir, PREDICTION, overwrite=overwrite, inputs=sources)
    _check_roi_size(roi_size)
    for path in files:  # headers only: fail on a foreign or oversized file before any work
        image_size(path)
    trained = load_model(model_file, device)
    class_names = trained.class_names
    palette = palette_for(class_names)

    written = []
    with staged_output_dir(out_dir, PREDICTION, overwrite=overwrite, inputs=sources) as staging:
        write_image_atomic(staging / "legend.png", legend_image(class_names, palette))
        write_json(staging / "palette.json", {name: [int(v) for v in palette[k]] for k, name in enumerate(class_names)})
        for path in track(files, description="segmenting"):
            image = read_image(path)  # one at a time: memory holds one image, not all of them
            network_input = torch.from_numpy(prepare_image(image, trained.preprocessing))[None]
            probs = trained.predict(network_input, roi_size=roi_size, probabilities=True)[0].cpu().numpy()
            if trained.preprocessing.channels == FUNDUS_CHANNELS:
                fov = estimate_fov(image)
                probs[:, ~fov] = 0.0
                probs[0, ~fov] = 1.0  # outside the field: background, for certain
                write_image_atomic(staging / f"{path.stem}_fov.png", fov.astype(np.uint8) * 255)
            classes = model_class_map(trained, probs)  # binary: at the operating threshold; OCT: ordered layers if set
            write_image_atomic(staging / f"{path.stem}_classes.png", classes)
            write_image_atomic(staging / f"{path.stem}_colour.png", colorize(classes, palette))
            write_image_atomic(staging / f"{path.stem}_overlay.png", overlay(image, classes, palette))
            if probabilities and len(class_names) == 2:
                write_image_atomic(staging / f"{path.stem}_probability.png", np.round(probs[1] * 255).astype(np.uint8))
            elif probabilities:
                with atomic_path(staging / f"{path.stem}_probabilities.npy") as tmp:
                    np.save(tmp, probs.astype(np.float16))
            written.append(out_dir / f"{path.stem}_classes.png")
    return written
