"""Options are checked by name, type and range before a model is built."""

from __future__ import annotations

import pytest

from edgekit.errors import ModelError, OptionError, UnknownNameError
from edgekit.models import MODELS, build_model, model_names, model_options


def test_model_names_lists_the_whole_zoo_sorted():
    assert model_names() == ["cnn", "ds_cnn", "lstm", "mlp", "mobilenet_v2", "resnet8"]
    assert model_names() == MODELS.names()


def test_model_options_returns_each_option_with_its_default():
    assert model_options("cnn") == {"filters": 32, "dense_units": 128, "dropout": 0.3}
    assert model_options("mobilenet_v2") == {"alpha": 0.35, "input_size": None, "dropout": 0.2}
    assert model_options("lstm") == {"units": 128, "layers": 1, "dropout": 0.2}


@pytest.mark.parametrize("name", model_names())
def test_every_option_default_is_a_plain_json_type(name):
    for value in model_options(name).values():
        assert value is None or type(value) in (int, float, bool, str)


def test_unknown_model_error_lists_the_known_models():
    expected = r"unknown model 'vgg16'; expected one of: cnn, ds_cnn"
    with pytest.raises(UnknownNameError, match=expected):
        build_model("vgg16", (8, 8, 1), 10)


def test_model_options_of_an_unknown_model_raises_unknown_name():
    with pytest.raises(UnknownNameError, match="unknown model 'nope'"):
        model_options("nope")


def test_unknown_option_error_lists_that_models_options():
    with pytest.raises(
        OptionError,
        match=r"unknown option 'filter' for model 'cnn'; expected one of: filters, dense_units, "
        r"dropout",
    ):
        build_model("cnn", (8, 8, 1), 10, {"filter": 8})


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("mobilenet_v2", {"alpha": 0}, r"alpha=0\.0 must be positive; expected alpha > 0"),
        ("mobilenet_v2", {"alpha": -0.5}, r"alpha=-0\.5 must be positive"),
        ("mobilenet_v2", {"input_size": 16}, r"input_size=16 is too small; expected .* >= 32"),
        ("lstm", {"units": 0}, r"units=0 is too small; expected units >= 1"),
        ("lstm", {"layers": 0}, r"layers=0 is too small; expected layers >= 1"),
        ("mlp", {"hidden_units": -3}, r"hidden_units=-3 is too small"),
        ("cnn", {"dropout": 1.0}, r"dropout=1\.0 is out of range; expected 0 <= dropout < 1"),
        ("cnn", {"filters": 0}, r"filters=0 is too small"),
        ("ds_cnn", {"blocks": 0}, r"blocks=0 is too small"),
        ("resnet8", {"weight_decay": -1e-4}, r"weight_decay=-0\.0001 is negative"),
    ],
)
def test_option_out_of_range_raises_option_error_naming_model_and_option(name, options, message):
    with pytest.raises(OptionError, match=rf"model '{name}': option {message}"):
        build_model(name, (8, 8, 1), 10, options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"filters": "many"}, r"option filters='many' for model 'cnn' has the wrong type"),
        ({"filters": "many"}, r"expected int; pass e\.g\. the default, filters=32"),
        ({"filters": 3.5}, r"option filters=3\.5 .* expected int"),
        ({"filters": True}, r"option filters=True .* expected int"),
        ({"dropout": "half"}, r"option dropout='half' .* expected float"),
        ({"dropout": float("nan")}, r"option dropout=nan .* expected float"),
        ({"dense_units": None}, r"option dense_units=None .* expected int"),
    ],
)
def test_option_of_the_wrong_type_raises_option_error(options, message):
    with pytest.raises(OptionError, match=message):
        build_model("cnn", (8, 8, 1), 10, options)


def test_string_option_values_from_the_command_line_are_converted_to_the_option_type():
    model = build_model("mlp", (8, 8, 1), 3, {"hidden_units": "4", "dropout": "0"})

    assert model.get_layer("hidden").units == 4
    assert model.get_layer("dropout").rate == 0.0


def test_optional_input_size_accepts_the_word_auto_and_picks_32_for_small_inputs():
    model = build_model("mobilenet_v2", (8, 8, 1), 3, {"alpha": "0.35", "input_size": "auto"})

    assert model.get_layer("resize").output_shape == (None, 32, 32, 1)


@pytest.mark.parametrize("num_classes", [1, 0, -2, 2.0, "10", True])
def test_num_classes_below_two_or_not_an_integer_raises_option_error(num_classes):
    with pytest.raises(OptionError, match=r"num_classes=.* expected an integer >= 2"):
        build_model("mlp", (8, 8, 1), num_classes)


@pytest.mark.parametrize("input_shape", [(64,), (1, 8, 8, 1), (8, 8, 1, 1, 1), ()])
def test_sample_shape_that_is_not_2d_or_3d_raises_model_error(input_shape):
    expected = r"expected an image \(height, width, channels\) or a sequence"
    with pytest.raises(ModelError, match=expected):
        build_model("cnn", input_shape, 10)


@pytest.mark.parametrize("input_shape", [(None, 8, 1), (8, 0, 1), (8, -1), (8.0, 8, 1)])
def test_sample_shape_with_non_positive_or_unknown_sizes_raises_model_error(input_shape):
    with pytest.raises(ModelError, match=r"must hold positive integers"):
        build_model("cnn", input_shape, 10)


def test_sample_shape_may_be_a_list_from_a_json_recipe():
    model = build_model("mlp", [8, 8, 1], 3, {"hidden_units": 4})

    assert model.input_shape == (None, 8, 8, 1)
