"""OnnxRuntimeModel behind the runtime interface: options, the prepared call, clean errors."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import ModelError, OptionError
from edgekit.runtimes import RUNTIMES
from edgekit.runtimes.onnxruntime import OnnxRuntimeModel


def test_each_optimization_level_gives_the_same_outputs(onnx_file, samples):
    outputs = [OnnxRuntimeModel.load(onnx_file, num_threads=1, ort_optimization=level).run(samples)
               for level in ("disable", "basic", "extended", "all")]
    for other in outputs[1:]:
        np.testing.assert_allclose(other, outputs[0], atol=1e-6)
    assert outputs[0].shape == (32, 3) and outputs[0].dtype == np.float32


def test_the_prepared_call_runs_a_feed_prepared_once(onnx_file, samples):
    runtime = RUNTIMES.get("onnxruntime").load(onnx_file, num_threads=1)
    call, timed = runtime.prepared_call(samples[:4])
    assert timed == "session.run() with a prepared feed"
    np.testing.assert_allclose(call()[0], runtime.run(samples[:4]), atol=1e-6)


def test_a_provider_this_onnxruntime_lacks_is_refused_naming_the_ones_it_has(onnx_file):
    with pytest.raises(OptionError, match="execution provider 'NoSuchExecutionProvider' is not "
                                          "available here; expected one of: .*CPUExecutionProvider"):
        OnnxRuntimeModel.load(onnx_file, ort_provider="NoSuchExecutionProvider")


def test_a_corrupt_file_is_one_model_error_that_keeps_its_cause(tmp_path):
    path = tmp_path / "garbage.onnx"
    path.write_bytes(b"\x08\x07garbage" * 50)
    with pytest.raises(ModelError, match="ONNX Runtime cannot load .*garbage.onnx") as raised:
        OnnxRuntimeModel.load(path)
    assert raised.value.__cause__ is not None and "\n" not in str(raised.value)
