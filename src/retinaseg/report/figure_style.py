"""Line styles shared by the volume figures.

Light lines and letters get a dark edge, so they stay visible on bright and
dark pixels alike.
"""

from __future__ import annotations

from matplotlib import patheffects

OUTLINE = [patheffects.withStroke(linewidth=2.6, foreground="black")]
"""Path effects of light lines and letters: a black edge 2.6 points wide."""

THIN_OUTLINE = [patheffects.withStroke(linewidth=2.2, foreground="black")]
"""Path effects of thin light lines (ETDRS circles): a black edge 2.2 points wide."""
