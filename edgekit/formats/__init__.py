"""Artifact formats: TFLite, ONNX, the Triton model repository and the mobile bundle."""
