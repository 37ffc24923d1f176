"""edgekit: train, compress, convert, check and deploy Keras models for the edge and for Triton."""

from edgekit import _compat  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from edgekit.errors import EdgekitError

# Stage functions share their names with their subpackages (edgekit.train is the function, its
# code lives in edgekit/train/). Importing them here, after the subpackage, makes the name the
# function for good. None of these imports loads TensorFlow.
from edgekit.bench import bench  # noqa: E402
from edgekit.compress import compress  # noqa: E402
from edgekit.export import export  # noqa: E402
from edgekit.optimize import optimize  # noqa: E402
from edgekit.pipeline import pipeline  # noqa: E402
from edgekit.serve import serve  # noqa: E402
from edgekit.train import train  # noqa: E402

from edgekit import config, data, manifest, models  # noqa: E402,F401  (edgekit.data etc. as attributes)
from edgekit.data import load_dataset  # noqa: E402
from edgekit.models import build_model  # noqa: E402

__version__ = "0.1.0"

__all__ = ["EdgekitError", "__version__", "bench", "build_model", "compress", "export", "load_dataset",
           "optimize", "pipeline", "serve", "train"]
