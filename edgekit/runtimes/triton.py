"""Triton Inference Server as a runtime: a model served at a URL, queried through tritonclient.

``load`` takes a URL instead of a file: ``triton://HOST:PORT`` (HTTP), ``http://...`` or
``grpc://...``, and a ``#MODEL`` fragment (or the server's only ready model). The client is
:class:`edgekit.runtimes.triton_client.TritonClient`, so Triton's refusals read the same everywhere. A server
that cannot be reached is an error within ``timeout`` seconds.

Example:
    >>> from edgekit.runtimes.triton import TritonModel
    >>> runtime = TritonModel.load("grpc://127.0.0.1:8001#cnn-digits")
    >>> probabilities = runtime.run(x_test)
"""

from __future__ import annotations

import os

import numpy as np

from edgekit.errors import DataError, ServeError
from edgekit.runtimes.base import Runtime
from edgekit.runtimes.triton_client import Classification, TritonClient

CONNECT_TIMEOUT_SECONDS = 5.0
SCHEMES = ("triton://", "http://", "grpc://")


def split_target(target: str) -> tuple[str, str | None]:
    """``"grpc://h:8001#cnn"`` -> ``("grpc://h:8001", "cnn")``; no fragment -> model None."""
    url, _, model = target.partition("#")
    return url, (model or None)


class TritonModel(Runtime):
    """One model on a Triton server behind the runtime interface (``load``, ``run``, ``describe``).

    Args:
        url: ``triton://HOST:PORT``, ``http://HOST:PORT``, ``grpc://HOST:PORT`` or ``HOST:PORT``.
        model: the served model's name; None picks the server's only ready model.
        protocol: "http" or "grpc" for a URL that does not say (default http).
        timeout: seconds to connect and to wait for each answer.
        version: the model version; "" lets the server's version policy choose.

    Raises:
        ServeError: when the server cannot be reached or the model is not ready (within
            ``timeout``).
        OptionError: for a model or version the server does not have, naming the ones it has.
    """

    name = "triton"
    format = "triton"
    options = ()  # the server owns its threads and its backends' settings
    libraries = ("tritonclient",)
    modules = ("tritonclient.http",)

    def __init__(self, url: str, model: str | None = None, protocol: str | None = None,
                 timeout: float = CONNECT_TIMEOUT_SECONDS, version: str = ""):
        self.client = TritonClient(url, protocol=protocol, timeout=timeout)
        self.url = self.client.url
        self.model = self.client.choose_model(model)
        self.version = str(version or "")
        self.client.check_version(self.model, self.version)
        if not self.client.is_model_ready(self.model, self.version):
            raise ServeError(f"model {self.model!r} at {self.url} is not ready (still loading, or "
                             "it failed to load); see the server log")
        metadata = self.client.metadata(self.model, self.version)
        if len(metadata["inputs"]) != 1:
            raise DataError(f"Triton model {self.model!r} has {len(metadata['inputs'])} inputs; "
                            "edgekit runs single-input classifiers")
        self._input = metadata["inputs"][0]
        self._output = metadata["outputs"][0]
        config = self.served_config()
        self.max_batch_size = int(config.get("max_batch_size", 0) or 0)
        self.dynamic_batching = "dynamic_batching" in config
        self.instances = sum(int(group.get("count", 1) or 1)
                             for group in config.get("instance_group", [])) or None
        self.num_threads = None

    @classmethod
    def accepts(cls, path: str | os.PathLike) -> bool:
        """A URL (``triton://``, ``http://``, ``grpc://``), optionally with ``#MODEL``."""
        return str(path).lower().startswith(SCHEMES)

    @classmethod
    def load(cls, path: str, protocol: str | None = None, timeout: float = CONNECT_TIMEOUT_SECONDS,
             version: str = "") -> "TritonModel":
        """Connect to ``URL#MODEL`` (no ``#MODEL``: the server's only ready model)."""
        url, model = split_target(str(path))
        return cls(url, model=model, protocol=protocol, timeout=timeout, version=version)

    @property
    def input_shape(self) -> tuple:
        shape = self._input["shape"]
        return tuple(int(size) for size in (shape[1:] if self.max_batch_size else shape))

    @property
    def input_dtype(self) -> str:
        from tritonclient.utils import triton_to_np_dtype  # lazy: a heavy library

        return np.dtype(triton_to_np_dtype(self._input["datatype"])).name

    def describe(self) -> dict:
        return {"runtime": self.name, "url": self.url, "model": self.model,
                "version": self.version or None,
                "protocol": self.client.protocol, "max_batch_size": self.max_batch_size,
                "dynamic_batching": self.dynamic_batching, "instances": self.instances,
                "input": {"name": self._input["name"], "shape": list(self._input["shape"]),
                          "dtype": self.input_dtype, "quantization": None},
                "output": {"name": self._output["name"], "shape": list(self._output["shape"]),
                           "dtype": self._output["datatype"], "quantization": None}}

    def served_config(self) -> dict:
        """The model's config as the server holds it (JSON: parameters, batching, instances)."""
        return self.client.config(self.model, self.version)

    def run(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Float32 outputs, sent in requests of at most the model's ``max_batch_size``."""
        x = np.asarray(x, dtype=self.input_dtype)
        if tuple(x.shape[1:]) != self.input_shape:
            raise DataError(f"samples of shape {tuple(x.shape)} do not fit Triton model "
                            f"{self.model!r}, which takes (N, "
                            f"{', '.join(str(size) for size in self.input_shape)})")
        step = max(1, min(int(batch_size), self.max_batch_size or 1))
        outputs = [self._infer(x[start:start + step]) for start in range(0, len(x), step)]
        return np.concatenate(outputs).astype(np.float32, copy=False) if outputs else \
            np.zeros((0, 0), dtype=np.float32)

    def classify(self, batch: np.ndarray, top_k: int = 5) -> list[list[Classification]]:
        """Top-k classes per sample from Triton's classification extension, with the labels of
        the model's labels file."""
        batch = np.ascontiguousarray(batch, dtype=self.input_dtype)
        if self.max_batch_size:
            return self.client.classify(self.model, batch, top_k=top_k, version=self.version)
        return [row for sample in batch  # a model without batching takes one sample per request
                for row in self.client.classify(self.model, sample, top_k=top_k,
                                                version=self.version)]

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        name = self._output["name"]
        inputs = {self._input["name"]: batch}
        if not self.max_batch_size:  # a model without batching takes one sample per request
            return np.stack([self.client.infer(self.model, {self._input["name"]: sample},
                                               version=self.version, outputs=[name])[name]
                             for sample in batch])
        return self.client.infer(self.model, inputs, version=self.version, outputs=[name])[name]

    def prepared_call(self, batch: np.ndarray):
        """One request with ``batch`` (the whole round trip)."""
        batch = np.ascontiguousarray(batch, dtype=self.input_dtype)
        return (lambda: self._infer(batch)), "one request, client round trip"

    def statistics(self) -> dict:
        """Triton's cumulative statistics for this model (counts; queue and compute times, ns)."""
        stats = self.client.statistics(self.model, self.version)
        return stats[0] if stats else {}

    def close(self) -> None:
        self.client.close()
