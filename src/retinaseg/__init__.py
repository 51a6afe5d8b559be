"""retinaseg: deep-learning segmentation of retinal OCT and fundus images.

The package follows the data flow: ``io`` (readers) -> ``data`` (datasets,
transforms) -> ``models`` -> ``training`` -> ``inference`` -> ``metrics`` /
``analysis`` -> ``report`` -> ``cli``.
"""

from retinaseg.errors import InputError
from retinaseg.types import Sample, SampleSet

__all__ = ["InputError", "Sample", "SampleSet"]
__version__ = "0.1.0"
