"""``auto``'s choice of inference option, remembered across processes.

Timing the options costs 0.5-1 s per process on 2 CPU cores, which a
single-scan ``analyze`` would pay on every run. Which option is fastest
depends on the hardware, PyTorch, the thread count, the network's
architecture (not its weights) and the image size, so the measured choice
is stored under all of these (and retinaseg's version) in
``inference_choices.json`` in the cache folder
(:func:`retinaseg.io.paths.cache_dir`) and reused while they stay the same.
Delete the file to measure again. A cache that cannot be read or written is
ignored: the options are timed as if it did not exist. A file of that name
that this module did not write (no :data:`CACHE_FORMAT` header) is neither
read nor replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from functools import cache
from pathlib import Path
from typing import Any

import torch

from retinaseg import __version__
from retinaseg.io.paths import cache_dir
from retinaseg.io.records import write_json
from retinaseg.models.trained import TrainedModel

CACHE_FILE = "inference_choices.json"

CACHE_FORMAT = "retinaseg-inference-choices-1"
"""The ``format`` of the cache file: only a file with it is read and replaced."""

MAX_ENTRIES = 256
"""Choices kept; the oldest go first (one per machine, network, image size and batch size)."""

MAX_CACHE_BYTES = 1 << 20
"""A larger cache file is not one this module wrote: it is ignored."""


def choice_key(
    model: TrainedModel, image_shape: tuple[int, int], batch_size: int, device: torch.device, candidates: tuple[str, ...]
) -> str:
    """What the fastest option depends on, as one hash: machine, versions, threads, how the model runs, sizes, candidates."""
    network = model.network
    architecture = [type(network).__qualname__] + [
        f"{name}:{tuple(value.shape)}:{value.dtype}" for name, value in network.state_dict().items()
    ]
    settings = model.evaluation
    described = {
        "machine": _machine(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "retinaseg": __version__,
        "architecture": architecture,
        "applied": [model.preprocessing.resize, settings.roi_size, settings.overlap, settings.sw_batch_size, settings.flips],
        "image_shape": [int(side) for side in image_shape],
        "batch_size": batch_size,
        "candidates": list(candidates),
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


def recall_choice(key: str) -> dict[str, Any] | None:
    """The entry stored under ``key`` (``option``, ``seconds_per_image``), or ``None``."""
    entry = (_entries() or {}).get(key)
    if not isinstance(entry, dict) or not isinstance(entry.get("option"), str):
        return None
    seconds = entry.get("seconds_per_image")
    if not isinstance(seconds, dict) or not all(isinstance(value, (int, float)) for value in seconds.values()):
        return None
    return entry


def remember_choice(key: str, option: str, seconds_per_image: dict[str, float]) -> None:
    """Store a measured choice under ``key`` (atomically; errors ignored, see the module notes)."""
    folder = cache_dir()
    if folder is None:
        return
    entries = _entries()
    if entries is None:  # a file this module did not write: left as it is
        return
    entries.pop(key, None)
    entries[key] = {"option": option, "seconds_per_image": seconds_per_image, "measured_unix_s": round(time.time())}
    kept = dict(list(entries.items())[-MAX_ENTRIES:])  # insertion order: the oldest first
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / CACHE_FILE, {"format": CACHE_FORMAT, "entries": kept})
    except OSError:
        pass


def _entries() -> dict[str, Any] | None:
    """The cache file's entries: empty when there is no file or it is unreadable, ``None`` when it is not ours."""
    folder = cache_dir()
    if folder is None:
        return {}
    path = folder / CACHE_FILE
    try:
        if not path.exists():
            return {}
        if not path.is_file() or path.stat().st_size > MAX_CACHE_BYTES:
            return None
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(content, dict) or content.get("format") != CACHE_FORMAT or not isinstance(content.get("entries"), dict):
        return None
    return content["entries"]


@cache
def _machine(device: torch.device) -> dict[str, Any]:
    """The hardware the options run on: GPU name, or CPU model, its feature flags and core count."""
    if device.type == "cuda":
        return {"gpu": torch.cuda.get_device_name(device), "cuda": torch.version.cuda}
    model, flags = "", ""
    try:  # Linux: the model name and flags (a VM may hide AMX or AVX-512 of the same model)
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "model name":
                model = value.strip()
            elif name.strip() == "flags":
                flags = hashlib.sha256(value.strip().encode()).hexdigest()
            if model and flags:
                break
    except OSError:
        pass
    return {
        "cpu": model or platform.processor(),
        "flags": flags,
        "capability": torch.backends.cpu.get_cpu_capability(),
        "arch": platform.machine(),
        "cores": os.cpu_count(),
    }
