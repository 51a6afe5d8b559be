"""Read PyTorch files (``.ckpt`` checkpoints, ``.pt`` weight files) without running code from them.

``torch.load`` unpickles, and a crafted pickle can execute anything. Every
model file retinaseg reads goes through :func:`read_torch_file`, which uses
PyTorch's restricted unpickler (``weights_only=True``): tensors, numbers,
strings, lists, tuples and dicts only. A file that needs anything else is
refused with one line, never loaded.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from typing import Any

import torch

from retinaseg.errors import InputError, describe_exception
from retinaseg.io.limits import check_regular_file

#: How PyTorch's restricted unpickler begins its message when a file needs more than plain data.
_RESTRICTED_REFUSAL = "Weights only load failed"


def read_torch_file(path: str | os.PathLike[str], what: str = "checkpoint") -> dict[str, Any]:
    """The dict stored in a PyTorch file, read with the restricted unpickler, on the CPU.

    Parameters
    ----------
    path
        A ``.ckpt`` or ``.pt`` file.
    what
        What the file should be, for messages (``"checkpoint"``, ``"weight file"``).

    Raises
    ------
    InputError
        Not a regular file; not a PyTorch file; a pickle that holds Python
        objects beyond plain data (it could run code); not a dict.
    """
    path = check_regular_file(path, what)
    if not zipfile.is_zipfile(path):  # every torch.save since PyTorch 1.6 writes a zip archive
        raise InputError(path, f"not a retinaseg {what} (not a PyTorch zip archive)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if str(err).startswith(_RESTRICTED_REFUSAL):
            raise InputError(
                path,
                f"refused: this {what} holds Python objects other than plain data and tensors, which could run code when loaded",
            ) from err
        raise InputError(path, f"not a retinaseg {what} ({describe_exception(err)})") from err
    except Exception as err:  # damaged archives and foreign files fail in many ways
        raise InputError(path, f"not a retinaseg {what} ({describe_exception(err)})") from err
    if not isinstance(payload, dict):
        raise InputError(path, f"not a retinaseg {what} (holds a {type(payload).__name__}, not a dict)")
    return payload
