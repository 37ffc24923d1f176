"""The compression stage: ``edgekit.compress(...)`` and ``edgekit compress``.

Techniques are registered classes (``prune``, ``cluster``, ``qat``, ``ptq``; see
:mod:`edgekit.compress.stages`), each declaring its options, recipe part, checks and layer table
in its own module; the flat :class:`CompressConfig` is built from those declarations. A user's
own technique is one module named in ``EDGEKIT_PLUGINS`` (or an ``edgekit.plugins`` entry
point). Importing this package loads neither TensorFlow nor tfmot.

Example:
    >>> from edgekit.compress import compress
    >>> result = compress("models/cnn-digits", int8=True)
    >>> result.rows[-1]["size_ratio_to_parent_fp32_tflite"]
"""

from edgekit.compress import cluster, prune, ptq, qat  # noqa: F401  (register the techniques)
from edgekit.compress.config import CompressConfig, option_table
from edgekit.compress.prune import PRUNE_STRUCTURES
from edgekit.compress.ptq import PTQ_MODES
from edgekit.compress.run import CompressResult, compress, default_output_dir
from edgekit.compress.stages import TECHNIQUES, StageContext, StageResult, Technique

__all__ = ["PRUNE_STRUCTURES", "PTQ_MODES", "TECHNIQUES", "CompressConfig", "CompressResult",
           "StageContext", "StageResult", "Technique", "compress", "default_output_dir",
           "option_table"]
