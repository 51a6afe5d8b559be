"""The CPU line every benchmark result carries (shared by the scripts in this folder)."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_description() -> str:
    """CPU model and whether it has the instructions bfloat16 needs (AVX-512 BF16, AMX); Linux, else the architecture."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.machine() or "unknown"
    lines = info.splitlines()
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.machine())
    flags = set(next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), []))
    return f"{name}; avx512_bf16 {'yes' if 'avx512_bf16' in flags else 'no'}, AMX {'yes' if 'amx_bf16' in flags else 'no'}"
