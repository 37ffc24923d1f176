"""The convert stage: TFLite, ONNX, a Triton model repository and a mobile bundle.

``export(model, ...)`` writes every artifact of a model folder into its ``export/`` sub-folder,
checks each against the Keras model on the test split, and records it all in a manifest.
Importing this package loads no TensorFlow.

Example:
    >>> from edgekit.export import export
    >>> result = export("models/cnn-digits", to="tflite,onnx,triton,mobile")
    >>> print(result.table())
"""

from edgekit.export.config import FORMATS, ExportConfig
from edgekit.export.run import ExportResult, FidelityError, export

__all__ = ["FORMATS", "ExportConfig", "ExportResult", "FidelityError", "export"]
