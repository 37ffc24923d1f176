"""The compression stage: ``edgekit.compress(...)`` and ``edgekit compress``.

Techniques are registered stages (``prune``, ``cluster``, ``qat``, ``ptq``; see
:mod:`edgekit.compress.stages`), each configured by fields of the flat :class:`CompressConfig`.
Importing this package loads neither TensorFlow nor tfmot.

Example:
    >>> from edgekit.compress import compress
    >>> result = compress("models/cnn-digits", int8=True)
    >>> result.rows[-1]["size_ratio_to_parent_fp32_tflite"]
"""

from edgekit.compress import cluster, prune, ptq, qat  # noqa: F401  (register the stages)
from edgekit.compress.config import PRUNE_STRUCTURES, PTQ_MODES, CompressConfig
from edgekit.compress.run import CompressResult, compress, default_output_dir
from edgekit.compress.stages import TECHNIQUES

__all__ = ["PRUNE_STRUCTURES", "PTQ_MODES", "TECHNIQUES", "CompressConfig", "CompressResult",
           "compress", "default_output_dir"]
