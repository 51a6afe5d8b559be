"""retinaseg's processes keep large freed blocks for reuse (glibc only)."""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys

import pytest

from retinaseg.allocator import reuse_freed_memory

# A fresh interpreter: a 64 MB array, by default mapped apart from the heap and unmapped when freed,
# comes from the heap once the thresholds are raised, and stays there, free for the next array.
_PROBE = """
import ctypes, json, sys
import numpy as np
from retinaseg.allocator import reuse_freed_memory
fields = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in fields]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
tuned = reuse_freed_memory() if sys.argv[1] == "tuned" else None
block = np.ones(64 << 20, dtype=np.uint8)
mapped = libc.mallinfo2().hblkhd
del block
print(json.dumps({"tuned": tuned, "mapped_apart": mapped >= 64 << 20, "kept_free": libc.mallinfo2().fordblks >= 64 << 20}))
"""


def _glibc_with_mallinfo2() -> bool:
    try:
        return sys.platform.startswith("linux") and hasattr(ctypes.CDLL(None), "mallinfo2")
    except OSError:
        return False


@pytest.mark.skipif(not _glibc_with_mallinfo2(), reason="needs glibc >= 2.33 (mallinfo2)")
@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("default", {"tuned": None, "mapped_apart": True, "kept_free": False}),
        ("tuned", {"tuned": True, "mapped_apart": False, "kept_free": True}),
    ],
)
def test_large_freed_blocks_stay_in_the_heap_once_tuned(mode: str, expected: dict) -> None:
    result = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == expected


def test_off_glibc_nothing_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert reuse_freed_memory() is False
