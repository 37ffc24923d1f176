"""The convert stage: TFLite, ONNX, a Triton model repository and a mobile bundle."""
