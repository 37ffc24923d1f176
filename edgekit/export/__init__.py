"""The convert stage: TFLite, ONNX, a Triton model repository and a mobile bundle.

``export(model, ...)`` writes every artifact of a model folder into its ``export/`` sub-folder,
checks each against the Keras model on the test split, and records it all in a manifest.
Each format is one registered :class:`ExportFormat` (:mod:`edgekit.export.formats`); a format
registered with :func:`register_format` joins ``--to``, the CLI's options and the manifest.
Importing this package loads no TensorFlow.

Example:
    >>> from edgekit.export import export
    >>> result = export("models/cnn-digits", to="tflite,onnx,triton,mobile")
    >>> print(result.table())
"""

# The built-in formats, registered in the order --to lists them.
from edgekit.export import tflite, onnx, triton, mobile  # noqa: F401,I001
from edgekit.export.config import ExportConfig, option_table
from edgekit.export.formats import FORMATS, ExportFormat, register_format
from edgekit.export.run import ExportResult, FidelityError, export

__all__ = ["FORMATS", "ExportConfig", "ExportFormat", "ExportResult", "FidelityError", "export",
           "option_table", "register_format"]
