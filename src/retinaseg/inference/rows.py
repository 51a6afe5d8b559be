"""Run the network only on the rows of a B-scan around the retina.

In an OCT B-scan the retina fills a band of rows: above it the network sees
one class (vitreous), below it another (choroid), and segmentation time
grows with the rows it is given. Neighbouring B-scans of a volume put the
retina at nearly the same rows, so :class:`RetinaRows` segments the first
B-scans at full height, learns the class above and the class below the
retina and the band of rows between them, and gives the next B-scans to the
network cropped to that band plus a margin of context. The rows outside the
crop get the class above or below.

Every cropped result is checked: it must show retina (a class other than
those two), and its first and last :data:`GUARD_PX` rows must hold only the
class above and the class below (unless the crop reaches the image's edge
there). A B-scan failing the check (the retina moved or left the crop, a
structure reaches the crop's edge) is segmented again at full height. A
model whose class above the retina is also the class below it (background
on both sides) is never cropped: a crop that missed the retina would look
like one above or below it. The agreement with full-height segmentation is
measured by ``benchmarks/inference_options.py`` (its ``+ retina rows``
rows; BENCHMARKS.md).
"""

from __future__ import annotations

import numpy as np

RETINA_MARGIN_PX = 64
"""Rows of context kept above and below the previous B-scan's retina, in pixels (before rounding to the size multiple)."""

GUARD_PX = 8
"""Rows at each cut edge of a crop that must hold only the class outside the retina, in pixels."""


class RetinaRows:
    """The rows to segment of each next batch of B-scans of one volume.

    Parameters
    ----------
    height
        Rows of a B-scan, in pixels.
    size_multiple
        The network's input size multiple: crops are grown to a multiple of
        it with real rows rather than padding.
    margin_px
        Rows of context above and below the retina, in pixels.

    Attributes
    ----------
    cropped, repeated
        B-scans segmented cropped, and those of them segmented again at full height.
    """

    def __init__(self, height: int, size_multiple: int = 1, margin_px: int = RETINA_MARGIN_PX) -> None:
        if margin_px < GUARD_PX:
            raise ValueError(f"margin_px must be at least {GUARD_PX}, got {margin_px}")
        self.height = height
        self.size_multiple = max(1, size_multiple)
        self.margin_px = margin_px
        self.cropped = 0
        self.repeated = 0
        self._classes: tuple[int, int] | None = None  # (above, below) the retina
        self._band: tuple[int, int] | None = None  # first and last retina row seen, inclusive

    def window(self) -> tuple[int, int]:
        """``(start, stop)`` rows for the next batch: the whole height until a retina was seen between two classes."""
        if self._band is None or self._classes is None:
            return 0, self.height
        start = max(0, self._band[0] - self.margin_px)
        stop = min(self.height, self._band[1] + 1 + self.margin_px)
        missing = -(stop - start) % self.size_multiple
        grow_down = min(missing, self.height - stop)
        stop += grow_down
        start = max(0, start - (missing - grow_down))
        return start, stop

    def place(self, labels: np.ndarray, window: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Full-height class maps of a cropped batch, and which passed the edge check.

        Parameters
        ----------
        labels
            ``(B, h, W)`` uint8 classes of rows ``window`` of each B-scan.
        window
            The ``(start, stop)`` rows from :meth:`window`.

        Returns
        -------
        full : numpy.ndarray
            ``(B, height, W)`` uint8: ``labels`` in their rows, the class
            above the retina over them and the class below under them.
        passed : numpy.ndarray
            ``(B,)`` bool: the B-scan's crop shows retina, and only the
            outside classes in its :data:`GUARD_PX` rows at each cut edge.
            Segment the others again at full height.
        """
        start, stop = window
        if (start, stop) == (0, self.height) or self._classes is None:
            return labels, np.ones(len(labels), dtype=bool)
        above, below = self._classes
        full = np.empty((len(labels), self.height, labels.shape[2]), dtype=labels.dtype)
        full[:, :start] = above
        full[:, start:stop] = labels
        full[:, stop:] = below
        passed = ((labels != above) & (labels != below)).any(axis=(1, 2))  # the crop shows retina
        if start > 0:
            passed &= (labels[:, :GUARD_PX] == above).all(axis=(1, 2))
        if stop < self.height:
            passed &= (labels[:, -GUARD_PX:] == below).all(axis=(1, 2))
        self.cropped += len(labels)
        self.repeated += int((~passed).sum())
        return full, passed

    def update(self, labels: np.ndarray, full_height: np.ndarray) -> None:
        """Learn from a batch's final class maps where the retina lies.

        Parameters
        ----------
        labels
            ``(B, height, W)`` uint8 classes of the batch.
        full_height
            ``(B,)`` bool: which of them were segmented at full height; the
            classes above and below the retina are learned from the last of
            those whose top and bottom rows differ in their most common
            class (a blank B-scan, vitreous through, teaches nothing), the
            band from all.
        """
        for image in labels[full_height][::-1]:
            top, bottom = _most_common(image[0]), _most_common(image[-1])
            if top != bottom:
                self._classes = (top, bottom)
                break
        if self._classes is None:
            return
        above, below = self._classes
        rows = np.flatnonzero(((labels != above) & (labels != below)).any(axis=(0, 2)))
        if len(rows):  # a blank B-scan keeps the previous band
            self._band = (int(rows[0]), int(rows[-1]))


def _most_common(values: np.ndarray) -> int:
    """The most common value of an integer array."""
    return int(np.bincount(values.ravel()).argmax())
