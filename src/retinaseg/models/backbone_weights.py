"""ImageNet backbone weights from a torchvision state-dict file (``model.options.backbone_weights``).

The ResNet (:mod:`retinaseg.models.resnet`) and VGG16
(:mod:`retinaseg.models.vgg_fcn`) backbones name their parameters as
torchvision does, so its ``.pth`` files load by name. The file is read with
the restricted unpickler (no code runs) and checked key by key and shape by
shape before anything is copied, so a wrong file is one line naming it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import torch

from retinaseg.errors import InputError
from retinaseg.io.torch_files import read_torch_file

WEIGHTS_OPTION = "model.options.backbone_weights"
"""The config key naming the file."""


def read_torchvision_weights(
    path: str | os.PathLike[str],
    expected: Mapping[str, torch.Tensor],
    *,
    name: str,
    first_conv: str,
    keep: Callable[[str], bool],
) -> dict[str, torch.Tensor]:
    """The tensors of a torchvision weight file that fit a backbone whose state dict is ``expected``.

    Parameters
    ----------
    path
        A ``.pth`` file holding a torchvision state dict.
    expected
        The backbone's state dict under the file's key names (only names and
        shapes are used; tensors on the meta device do).
    name
        What the file must be, for messages, e.g. ``"torchvision VGG16 weights"``.
    first_conv
        Key of the first convolution's weight. The file holds ImageNet's RGB
        filters; for a grey backbone (1 input channel) they are summed, which
        answers a grey image as the RGB network answers it repeated in R, G and B.
    keep
        Whether a key of the file belongs to the backbone; the others (the
        classifier) are ignored.

    Returns
    -------
    dict
        ``{key: tensor}`` ready for ``load_state_dict(..., strict=False)``:
        only ``num_batches_tracked`` buffers may be absent (files saved by
        PyTorch before 0.4.1 lack them).

    Raises
    ------
    InputError
        Naming :data:`WEIGHTS_OPTION`: a backbone with neither 1 nor 3 input
        channels. Naming the file: not a plain PyTorch file, missing or
        unexpected keys, or a value that is not a tensor of the right shape.
    """
    shapes = {key: tuple(value.shape) for key, value in expected.items()}
    in_channels = shapes[first_conv][1]
    if in_channels not in (1, 3):
        raise InputError(WEIGHTS_OPTION, f"ImageNet weights need 1 or 3 input channels, got {in_channels}")
    shapes[first_conv] = (shapes[first_conv][0], 3, *shapes[first_conv][2:])
    found = {str(key): value for key, value in read_torch_file(path, "backbone weight file").items() if keep(str(key))}
    optional = {key for key in shapes if key.endswith("num_batches_tracked")}
    missing = sorted(shapes.keys() - found.keys() - optional)
    unexpected = sorted(found.keys() - shapes.keys())
    if missing or unexpected:
        lists = [f"{what} keys {_first(keys)}" for what, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
        raise InputError(path, f"not {name}: {'; '.join(lists)}")
    for key, value in found.items():
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        if got != shapes[key]:
            raise InputError(path, f"not {name}: {key} is {got}, the backbone needs {shapes[key]}")
    if in_channels == 1:
        found[first_conv] = found[first_conv].sum(dim=1, keepdim=True)
    return found


def _first(keys: Sequence[object], count: int = 3) -> str:
    """Up to ``count`` keys and how many more, for one-line messages."""
    shown = ", ".join(map(str, keys[:count])) or "none"
    return f"{shown} (+{len(keys) - count} more)" if len(keys) > count else shown
