"""Corrupt, truncated and byte-flipped ONNX files get one clean ModelError, never a crash."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import EdgekitError, ModelError
from edgekit.formats.onnx import check_onnx_file
from edgekit.inspect import inspect_artifact
from edgekit.runtimes.onnxruntime import OnnxRuntimeModel


def test_a_good_file_runs_and_describes_itself(onnx_file):
    runtime = OnnxRuntimeModel.load(onnx_file, num_threads=1)
    outputs = runtime.run(np.ones((5, 4), np.float32), batch_size=2)
    assert outputs.shape == (5, 3) and outputs.dtype == np.float32
    np.testing.assert_allclose(outputs.sum(axis=1), 1.0, rtol=1e-5)
    described = runtime.describe()
    assert described["input"] == {"name": "input", "shape": [-1, 4], "dtype": "float32",
                                  "quantization": None}
    assert inspect_artifact(onnx_file)["ops"] == {"Add": 1, "MatMul": 1, "Softmax": 1}


@pytest.mark.parametrize("cut", [0, 10, 200])
def test_truncated_file_is_a_clean_error(tmp_path, onnx_file, cut):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(onnx_file.read_bytes()[:cut])
    for check in (check_onnx_file, OnnxRuntimeModel.load, inspect_artifact):
        with pytest.raises(ModelError, match="broken.onnx"):
            check(broken)


def test_random_byte_flips_give_a_clean_error_or_a_valid_model(tmp_path, onnx_file):
    rng = np.random.default_rng(0)
    original = bytearray(onnx_file.read_bytes())
    outcomes = set()
    for trial in range(20):
        data = bytearray(original)
        for position in rng.integers(0, len(data), size=3):
            data[position] ^= 1 << int(rng.integers(0, 8))
        flipped = tmp_path / f"flipped{trial}.onnx"
        flipped.write_bytes(bytes(data))
        try:
            check_onnx_file(flipped)
            OnnxRuntimeModel.load(flipped).run(np.ones((2, 4), np.float32))
            outcomes.add("valid")
        except EdgekitError as error:  # ModelError, or DataError for a flipped input shape
            assert "\n" not in str(error)
            outcomes.add("clean error")
    assert "clean error" in outcomes


def test_a_wrong_input_shape_names_both_shapes(onnx_file):
    from edgekit.errors import DataError

    with pytest.raises(DataError, match=r"shape \['batch', 4\]; received a batch of shape \[2, 5\]"):
        OnnxRuntimeModel.load(onnx_file).run(np.ones((2, 5), np.float32))
