"""One runtime interface: what every registered runtime declares, how a file finds its runtime,
how options reach a runtime."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest

from edgekit.errors import OptionError
from edgekit.options import Option
from edgekit.runtimes import RUNTIMES, Runtime, declared_options, runtime_for, runtime_module

BUILT_IN = {"keras": "keras", "keras3": "keras", "litert": "tflite", "onnxruntime": "onnx",
            "triton": "triton"}


def test_every_built_in_runtime_is_a_registered_runtime_that_declares_itself():
    assert set(BUILT_IN) <= set(RUNTIMES.names())
    for name, format_name in BUILT_IN.items():
        runtime = RUNTIMES.get(name)
        assert issubclass(runtime, Runtime) and runtime.name == name
        assert runtime.format == format_name
        assert all(isinstance(option, Option) for option in runtime.options)
        for method in ("load", "run", "describe"):  # implemented, not the base's NotImplemented
            assert getattr(runtime, method) is not getattr(Runtime, method), (name, method)
        assert runtime.libraries and runtime_module(name) is None


def test_versions_are_the_installed_libraries_of_the_runtime():
    assert RUNTIMES.get("onnxruntime").versions() == {
        "onnxruntime": importlib.metadata.version("onnxruntime")}
    assert RUNTIMES.get("litert").versions()["ai-edge-litert"] == \
        importlib.metadata.version("ai-edge-litert")


@pytest.mark.parametrize("path, runtime", [
    ("model.tflite", "litert"), ("MODEL.TFLITE", "litert"), ("export/model_int8.onnx", "onnxruntime"),
    ("grpc://127.0.0.1:8001#cnn", "triton"), ("triton://host:8000", "triton"),
])
def test_a_file_or_url_finds_its_runtime_by_suffix_or_scheme(path, runtime):
    assert runtime_for(path) is RUNTIMES.get(runtime)


def test_a_keras_file_finds_the_keras_that_wrote_it(tmp_path):
    import zipfile

    for writer, expected in (("2.21.0", "keras"), ("3.15.0", "keras3")):
        path = tmp_path / f"model-{writer}.keras"
        with zipfile.ZipFile(path, "w") as archive:  # what read_model_info reads: no TensorFlow
            archive.writestr("metadata.json", f'{{"keras_version": "{writer}"}}')
            archive.writestr("config.json", '{"class_name": "Functional", "config": {"layers": []}}')
        assert runtime_for(path).name == expected


def test_a_file_no_runtime_runs_names_the_suffixes_that_do():
    with pytest.raises(OptionError, match=r"no runtime runs 'model\.pt'; expected .*\.tflite.*\.onnx"
                                          r".*EDGEKIT_PLUGINS"):
        runtime_for("model.pt")


def test_a_runtime_takes_only_the_options_it_declares_each_checked(onnx_file):
    values = {"num_threads": 1, "xnnpack": False, "ort_optimization": "basic", "unknown": 3,
              "ort_provider": None}
    assert RUNTIMES.get("onnxruntime").option_values(values) == {"num_threads": 1,
                                                               "ort_optimization": "basic"}
    assert RUNTIMES.get("triton").option_values(values) == {}
    runtime = RUNTIMES.get("onnxruntime").open(onnx_file, values)
    assert runtime.describe()["optimization"] == "basic" and runtime.describe()["num_threads"] == 1
    with pytest.raises(OptionError, match="--ort-optimization 'fastest'; expected one of: disable, "
                                          "basic, extended, all"):
        RUNTIMES.get("onnxruntime").option_values({"ort_optimization": "fastest"})
    with pytest.raises(OptionError, match="--num-threads .*an integer >= 1; received 0"):
        RUNTIMES.get("litert").option_values({"num_threads": 0})


def test_declared_options_gather_every_runtimes_options():
    options = declared_options()
    assert {"num_threads", "xnnpack", "ort_optimization", "ort_provider", "custom_objects"} <= set(options)
    assert options["xnnpack"].default is True


def test_the_base_class_gives_a_working_prepared_call_input_shape_and_close():
    class Doubler(Runtime):
        name = "doubler"

        def run(self, x, batch_size=256):
            return np.asarray(x, np.float32) * 2

        def describe(self):
            return {"runtime": self.name, "input": {"name": "x", "shape": [-1, 3], "dtype": "float32"},
                    "output": {"name": "y", "shape": [-1, 3], "dtype": "float32"}}

    with Doubler() as runtime:
        call, timed = runtime.prepared_call(np.ones((2, 3)))
        assert timed == "runtime.run(batch)" and call().tolist() == [[2, 2, 2], [2, 2, 2]]
        assert runtime.input_shape == (3,) and runtime.input_dtype == "float32"
    assert Doubler.option_values({"num_threads": 2}) == {"num_threads": 2}
    with pytest.raises(NotImplementedError, match="'doubler' does not implement load"):
        Doubler.load("x")
