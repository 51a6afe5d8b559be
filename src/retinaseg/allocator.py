"""The C memory allocator of retinaseg's own processes: keep large freed blocks for reuse.

glibc serves every allocation above its mmap threshold (at most 32 MB by
default) with fresh pages from the kernel and gives them back on free, so an
array allocated again (a volume's B-scans as float32, 93 MB for 61 B-scans of
496x768; a U-Net's activations in every forward pass) faults in all its pages
again. On 2 cores that was 1.3-1.45x of the network's time on a 61-B-scan
volume and about 1-2 s of a whole ``analyze`` (BENCHMARKS.md). The command
line and the cohort's worker processes therefore raise the threshold and the
trim limit, as PyTorch's CPU performance guides advise (or a different
allocator). Freed memory then stays with the process until it exits, to be
reused: the peak resident size of an ``analyze`` stayed within a few percent
(BENCHMARKS.md), though a heap's holes can make it grow in a long-lived
process. Processes retinaseg does not start (a user's Python session, Dask
workers) are left alone.
"""

from __future__ import annotations

import ctypes
import sys

MMAP_THRESHOLD_BYTES = 1 << 30
"""Allocations up to this size come from the reusable heap instead of fresh pages."""

FALLBACK_MMAP_THRESHOLD_BYTES = 32 << 20
"""The most older glibc versions accept (twice their heap size limit); it still fixes the threshold."""

TRIM_THRESHOLD_BYTES = (1 << 31) - 1
"""Free memory at the top of the heap up to this size is kept for reuse, not returned."""

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt(3) parameter numbers of glibc


def reuse_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (see the module notes).

    Returns
    -------
    bool
        Whether both settings were applied (the mmap threshold possibly only
        at :data:`FALLBACK_MMAP_THRESHOLD_BYTES`): ``False`` off Linux or
        without glibc's ``mallopt`` (musl, macOS, Windows).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    trim = bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    mmap = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) or mallopt(_M_MMAP_THRESHOLD, FALLBACK_MMAP_THRESHOLD_BYTES))
    return trim and mmap
