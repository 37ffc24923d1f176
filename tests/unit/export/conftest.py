"""Fixtures for the export tests (the shared tiny ONNX and Keras models are in tests/unit/conftest.py)."""

from __future__ import annotations

import pytest

import edgekit  # noqa: F401  (selects Keras 2 before TensorFlow loads)


@pytest.fixture(scope="session")
def tiny_model_folder(tmp_path_factory):
    """A model folder from ``edgekit train``: a 32-unit mlp, 3 epochs on digits (a few seconds)."""
    folder = tmp_path_factory.mktemp("models") / "mlp-digits"
    edgekit.train(model="mlp", epochs=3, model_options={"hidden_units": 32}, output_dir=folder,
                  progress=False)
    return folder
