"""ExportConfig: parsing the CLI's comma lists, checking ranges, reproducing the command."""

from __future__ import annotations

import pytest

from edgekit.errors import OptionError
from edgekit.export.config import ExportConfig


def test_comma_lists_from_the_cli_become_tuples():
    config = ExportConfig.from_options({"to": "onnx, triton", "onnx_precisions": "fp32,int8",
                                        "preferred_batch_sizes": "4,8"})
    assert config.to == ("onnx", "triton")
    assert config.onnx_precisions == ("fp32", "int8")
    assert config.preferred_batch_sizes == (4, 8)


def test_defaults_export_every_format_with_opset_17():
    config = ExportConfig.from_options({})
    assert config.to == ("tflite", "onnx", "triton", "mobile")
    assert config.opset == 17 and config.triton_repository == "triton_repo"
    assert (config.fp32_min_agreement, config.fp32_max_abs_diff) == (0.999, 1e-4)
    assert (config.fp16_min_agreement, config.int8_min_agreement) == (0.995, 0.98)


BAD_OPTIONS = [
    ({"to": "onnx,coreml"}, "unknown value 'coreml' for --to; expected one of: tflite"),
    ({"to": ""}, "--to names no format"),
    ({"onnx_precisions": "int4"}, "unknown value 'int4' for --onnx-precisions"),
    ({"tflite_precisions": "bf16"}, "unknown value 'bf16' for --tflite-precisions"),
    ({"samples": 0}, "samples must be an integer >= 1; received 0"),
    ({"int8_min_agreement": 1.5}, r"int8_min_agreement is a share of samples in \[0, 1\]"),
    ({"max_batch_size": 4, "preferred_batch_sizes": "8"}, "preferred batch size 8 exceeds"),
    ({"preferred_batch_sizes": "eight"}, "preferred_batch_sizes takes whole numbers"),
    ({"instance_kind": "tpu"}, "unknown value 'tpu' for --instance-kind"),
    ({"version_policy": "newest"}, "unknown version policy 'newest'; expected latest:N"),
    ({"opset_version": 17}, "unknown export option"),
    ({"onnx_int8": "u8u8"}, "unknown value 'u8u8' for --onnx-int8; expected one of: auto, u8s8"),
    ({"calibration_method": "kl"}, "unknown value 'kl' for --calibration-method; expected one of"),
    ({"opset": 12}, r"--opset takes the ONNX opset to write, an integer >= 13; received 12"),
    ({"triton_precision": "int4"}, "unknown value 'int4' for --triton-precision"),
]


@pytest.mark.parametrize("options, message", BAD_OPTIONS, ids=[str(o) for o, _ in BAD_OPTIONS])
def test_bad_options_say_what_was_received_and_expected(options, message):
    with pytest.raises(OptionError, match=message):
        ExportConfig.from_options(options)


def test_cli_args_reproduce_the_config_and_leave_defaults_out():
    config = ExportConfig.from_options({"to": "onnx", "opset": 13, "onnx_precisions": "int8",
                                        "int8_min_agreement": 0.95})
    args = config.to_cli_args()
    assert args == ["--to", "onnx", "--opset", "13", "--onnx-precisions", "int8",
                    "--int8-min-agreement", "0.95"]
    assert ExportConfig.from_options({"to": "onnx", "opset": 13, "onnx_precisions": "int8",
                                      "int8_min_agreement": 0.95}) == config


def test_paths_may_be_given_as_path_objects_and_are_kept_as_text(tmp_path):
    config = ExportConfig.from_options({"triton_repository": tmp_path / "repo",
                                        "data_dir": tmp_path})
    assert config.triton_repository == str(tmp_path / "repo") and config.data_dir == str(tmp_path)
    assert config.to_cli_args() == ["--to", "tflite,onnx,triton,mobile", "--data-dir",
                                    str(tmp_path), "--triton-repository", str(tmp_path / "repo")]
