"""URLs, unreachable servers, and files turned into model inputs — no server started."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from edgekit.data.base import Preprocessing
from edgekit.errors import DataError, OptionError
from edgekit.runtimes.triton_client import TritonClient, parse_url
from edgekit.errors import ServeError
from edgekit.serve.inputs import load_batch, resolve_preprocessing


@pytest.mark.parametrize("url, protocol, expected", [
    ("http://127.0.0.1:8000", None, ("http", "127.0.0.1:8000")),
    ("grpc://127.0.0.1:9001/", None, ("grpc", "127.0.0.1:9001")),
    ("127.0.0.1:8001", "grpc", ("grpc", "127.0.0.1:8001")),
    ("triton://127.0.0.1:8000", None, ("http", "127.0.0.1:8000")),
    ("localhost", "grpc", ("grpc", "localhost:8001")),
])
def test_urls_give_protocol_and_address(url, protocol, expected):
    assert parse_url(url, protocol) == expected


@pytest.mark.parametrize("url, protocol, message", [
    ("ftp://127.0.0.1:1", None, "protocol 'ftp'; expected http://HOST:PORT"),
    ("http://127.0.0.1:1", "grpc", "says http but --protocol is grpc"),
    ("https://127.0.0.1:1", None, "https is not supported"),
])
def test_bad_urls_are_refused(url, protocol, message):
    with pytest.raises(OptionError, match=message):
        parse_url(url, protocol)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_an_unreachable_server_is_a_clear_error_within_seconds(protocol, free_port):
    client = TritonClient(f"127.0.0.1:{free_port}", protocol=protocol, timeout=3)
    started = time.monotonic()
    with pytest.raises(ServeError, match=f"cannot reach Triton at {protocol}://127.0.0.1:{free_port}.*edgekit serve"):
        client.check_ready()
    assert client.is_ready() is False
    with pytest.raises(ServeError, match="cannot reach Triton"):
        client.infer("any", np.zeros((1, 4), np.float32))
    assert time.monotonic() - started < 10


def test_preprocessing_comes_from_the_served_config_a_manifest_or_numbers(tmp_path):
    recorded = {"scale": 1 / 16, "mean": 0.3, "std": 0.4}
    config = {"parameters": {"edgekit_preprocessing": {"string_value": json.dumps(recorded)}}}
    assert resolve_preprocessing("auto", config).preprocessing == Preprocessing(**recorded)
    assert resolve_preprocessing("auto", {}).known is False
    assert resolve_preprocessing("none", config).preprocessing.identity
    assert resolve_preprocessing("scale=0.5,mean=0.1,std=2", {}).preprocessing == Preprocessing(0.5, 0.1, 2.0)
    (tmp_path / "manifest.json").write_text(json.dumps({"dataset": {"preprocessing": recorded}}))
    assert resolve_preprocessing(str(tmp_path), {}).preprocessing == Preprocessing(**recorded)
    assert resolve_preprocessing(str(tmp_path / "manifest.json"), {}).preprocessing == Preprocessing(**recorded)
    with pytest.raises(OptionError, match="neither auto, none"):
        resolve_preprocessing("models/nowhere", {})
    with pytest.raises(OptionError, match="scale=S,mean=M,std=D"):
        resolve_preprocessing("scale=1,gamma=2", {})


def test_an_image_is_resized_to_the_input_and_normalised(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((16, 20, 3), 255, np.uint8)).save(tmp_path / "white.png")
    # The served contract records raw values 0..16 (the bundled digits): pixel 255 is raw 16.
    recorded = {"scale": 0.0625, "mean": 0.5, "std": 0.25, "raw": {"min": 0.0, "max": 16.0}}
    config = {"parameters": {"edgekit_preprocessing": {"string_value": json.dumps(recorded)}}}
    batch = load_batch(tmp_path / "white.png", [8, 8, 1], "float32",
                       resolve_preprocessing("auto", config))
    assert batch.shape == (1, 8, 8, 1) and batch.dtype == np.float32
    np.testing.assert_allclose(batch, (16 * 0.0625 - 0.5) / 0.25)
    # With no recorded range, 0..255 pixels are the raw values.
    batch = load_batch(tmp_path / "white.png", [8, 8, 1], "float32",
                       resolve_preprocessing("scale=0.00392156862745098,mean=0.5,std=0.25", {}))
    np.testing.assert_allclose(batch, (1.0 - 0.5) / 0.25, rtol=1e-5)


def test_an_image_with_unknown_preprocessing_is_refused_not_guessed(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "digit.png")
    with pytest.raises(DataError, match="cannot tell how to preprocess image digit.png.*--preprocess"):
        load_batch(tmp_path / "digit.png", [8, 8, 1], "float32", resolve_preprocessing("auto", {}))


def test_npy_holds_one_sample_or_a_batch_and_a_wrong_shape_is_named(tmp_path):
    resolved = resolve_preprocessing("auto", {})
    np.save(tmp_path / "one.npy", np.ones((8, 8, 1)))
    np.save(tmp_path / "many.npy", np.ones((5, 8, 8, 1), np.float32))
    np.save(tmp_path / "wrong.npy", np.ones((7, 7), np.float32))
    assert load_batch(tmp_path / "one.npy", [8, 8, 1], "float32", resolved).shape == (1, 8, 8, 1)
    assert load_batch(tmp_path / "many.npy", [-1, 8, 1], "float32", resolved).shape == (5, 8, 8, 1)
    with pytest.raises(DataError, match=r"shape \[7, 7\]; the model expects \[8, 8, 1\]"):
        load_batch(tmp_path / "wrong.npy", [8, 8, 1], "float32", resolved)
    with pytest.raises(DataError, match="does not exist"):
        load_batch(tmp_path / "missing.npy", [8, 8, 1], "float32", resolved)
