"""A small Triton client over tritonclient, HTTP or gRPC, with errors as one clear line.

Triton's refusals (unknown model, wrong input name, shape or dtype) become :class:`InferenceError`
carrying Triton's own message; a server that cannot be reached becomes :class:`ServeError` within
``timeout`` seconds.

Example:
    >>> client = TritonClient("http://127.0.0.1:8000")
    >>> client.classify("cnn", x, top_k=3)[0]
    [Classification(score=0.97, index=7, label='7'), ...]
"""

from __future__ import annotations

import contextlib
import http.client
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from edgekit.errors import InferenceError, OptionError, ServeError

PROTOCOLS = ("http", "grpc")
DEFAULT_PORTS = {"http": 8000, "grpc": 8001}


@dataclass(frozen=True)
class Classification:
    """One of the top-k classes Triton's classification extension returned."""

    score: float
    index: int
    label: str | None


def parse_url(url: str, protocol: str | None = None) -> tuple[str, str]:
    """``"grpc://127.0.0.1:8001"`` -> ``("grpc", "127.0.0.1:8001")``; a bare host:port takes ``protocol``.

    ``triton://`` is accepted as "the default protocol" (``edgekit bench --target triton://...``).
    """
    scheme, separator, address = url.partition("://")
    if not separator:
        scheme, address = "", url
    scheme = scheme.lower()
    if scheme in ("", "triton"):
        scheme = protocol or "http"
    elif protocol and protocol != scheme:
        raise OptionError(f"--url {url} says {scheme} but --protocol is {protocol}; drop one of them")
    if scheme == "https":
        raise OptionError(f"--url {url}: https is not supported; expected http://HOST:PORT or grpc://HOST:PORT")
    if scheme not in PROTOCOLS:
        raise OptionError(f"--url {url} has protocol {scheme!r}; expected http://HOST:PORT or grpc://HOST:PORT")
    address = address.rstrip("/")
    if not address:
        raise OptionError(f"--url {url!r} has no host; expected e.g. http://127.0.0.1:8000")
    if ":" not in address.rsplit("]", 1)[-1]:
        address = f"{address}:{DEFAULT_PORTS[scheme]}"
    port = address.rsplit(":", 1)[1]
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise OptionError(f"--url {url!r} has port {port!r}; expected a number from 1 to 65535, "
                          "e.g. http://127.0.0.1:8000")
    return scheme, address


class TritonClient:
    """Readiness, metadata, inference, top-k and statistics for one Triton server.

    Args:
        url: ``http://HOST:PORT``, ``grpc://HOST:PORT``, ``triton://HOST:PORT`` or ``HOST:PORT``.
        protocol: "http" or "grpc" when the URL does not say.
        timeout: seconds to connect and to wait for each answer.
    """

    def __init__(self, url: str, protocol: str | None = None, timeout: float = 10.0):
        if protocol is not None and protocol not in PROTOCOLS:
            raise OptionError(f"protocol must be one of {', '.join(PROTOCOLS)}; received {protocol!r}")
        self.protocol, self.address = parse_url(url, protocol)
        self.url = f"{self.protocol}://{self.address}"
        self.timeout = float(timeout)
        if self.protocol == "http":
            import tritonclient.http as module  # lazy: a heavy library

            self._client = module.InferenceServerClient(
                self.address, connection_timeout=self.timeout, network_timeout=self.timeout)
            self._call = {}
        else:
            import tritonclient.grpc as module  # lazy: a heavy library

            self._client = module.InferenceServerClient(self.address)
            self._call = {"client_timeout": self.timeout}
        self._module = module
        self._metadata: dict[str, dict] = {}

    # Errors ------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        from tritonclient.utils import InferenceServerException  # lazy: a heavy library

        try:
            yield
        except InferenceServerException as error:
            message = " ".join(str(error.message() or error).split())
            message = message.replace("[request id: <id_unknown>] ", "")
            status = str(error.status() or "")
            if _looks_unreachable(message, status) and not self._answers():
                raise self._unreachable(message) from error
            raise InferenceError(f"Triton at {self.url} refused {action}: {message}") from error
        except (OSError, EOFError) as error:  # geventhttpclient raises socket errors as they are
            raise self._unreachable(str(error) or type(error).__name__) from error
        except Exception as error:  # noqa: BLE001
            if not isinstance(error, http.client.HTTPException) and \
                    not (type(error).__module__ or "").startswith("geventhttpclient"):
                raise
            # Something answered, but not in HTTP: most often the gRPC port given to HTTP.
            other = "grpc" if self.protocol == "http" else "http"
            raise ServeError(
                f"{self.url} answered, but not in {self.protocol.upper()} "
                f"({type(error).__name__}); is it Triton's {other} port? Use the HTTP port "
                f"(8000 by default) for http:// and the gRPC port (8001) for grpc://, or pass "
                f"--protocol {other}") from error

    def _answers(self) -> bool:
        """Whether the server is live: Triton answers some refusals with gRPC's UNAVAILABLE too
        (e.g. a load request to a server without explicit model control)."""
        try:
            return bool(self._client.is_server_live(**self._call))
        except Exception:  # any failure to ask means it cannot be reached
            return False

    def _unreachable(self, reason: str) -> ServeError:
        return ServeError(f"cannot reach Triton at {self.url} ({reason}); is `edgekit serve` running "
                          "there? check --url and --protocol")

    # Server ------------------------------------------------------------------------------------
    def is_ready(self) -> bool:
        """True when the server answers and every model is ready; False when unreachable."""
        try:
            with self._errors("a readiness check"):
                return bool(self._client.is_server_ready(**self._call))
        except ServeError:
            return False

    def check_ready(self) -> None:
        """Raise ServeError unless the server is reachable and ready."""
        with self._errors("a readiness check"):
            ready = self._client.is_server_ready(**self._call)
        if not ready:
            raise ServeError(f"Triton at {self.url} answers but is not ready (a model is still loading "
                             "or failed); see the server log")

    def models(self) -> list[dict]:
        """The repository index: ``[{"name", "version", "state", "reason"?}, ...]``."""
        with self._errors("the repository index"):
            index = self._client.get_model_repository_index(**self._json())
        models = index.get("models", []) if isinstance(index, dict) else index
        return [dict(model) for model in models]

    def choose_model(self, model: str | None) -> str:
        """``model`` itself, or the only ready model; else an error listing the choices."""
        index = self.models()
        if model:
            known = sorted({entry["name"] for entry in index})
            if known and model not in known:  # an unknown name is bad input, not a failed request
                raise OptionError(f"Triton at {self.url}: unknown model: {model!r}; it serves "
                                  f"{', '.join(known)}; pass one of them to --model")
            return model
        ready = sorted({entry["name"] for entry in index if entry.get("state") == "READY"})
        if len(ready) == 1:
            return ready[0]
        raise OptionError(f"Triton at {self.url} serves {len(ready)} ready models "
                          f"({', '.join(ready) or 'none'}); pass --model NAME")

    def check_version(self, model: str, version: str) -> None:
        """OptionError when ``version`` is not a version of ``model`` in the repository index."""
        if not version:
            return
        versions = sorted({str(entry.get("version")) for entry in self.models()
                           if entry.get("name") == model and entry.get("version")})
        if versions and str(version) not in versions:
            raise OptionError(f"model {model!r} at {self.url} has no version {version}; it has "
                              f"{', '.join(versions)}; pass one of them to --model-version")

    def metadata(self, model: str, version: str = "") -> dict:
        """Inputs and outputs (name, datatype, shape with -1 for the batch) of a model."""
        key = f"{model}:{version}"
        if key not in self._metadata:
            with self._errors(f"metadata of model {model!r}"):
                metadata = dict(self._client.get_model_metadata(model, version, **self._json()))
            for tensor in (*metadata.get("inputs", []), *metadata.get("outputs", [])):
                tensor["shape"] = [int(dim) for dim in tensor.get("shape", [])]  # gRPC's JSON has strings
            self._metadata[key] = metadata
        return self._metadata[key]

    def config(self, model: str, version: str = "") -> dict:
        with self._errors(f"the config of model {model!r}"):
            config = self._client.get_model_config(model, version, **self._json())
        return config.get("config", config)

    def statistics(self, model: str = "", version: str = "") -> list[dict]:
        """Triton's per-model statistics: counts, and queue / compute times in nanoseconds."""
        with self._errors(f"statistics of model {model or 'every model'!r}"):
            stats = self._client.get_inference_statistics(model, version, **self._json())
        return list(stats.get("model_stats", []))

    def is_model_ready(self, model: str, version: str = "") -> bool:
        """True when ``model`` (that version, or the policy's versions) is loaded and ready."""
        with self._errors(f"a readiness check of model {model!r}"):
            return bool(self._client.is_model_ready(model, version, **self._call))

    def load_model(self, model: str) -> None:
        """Ask a server started with ``--model-control explicit`` to (re)load ``model``."""
        with self._errors(f"loading model {model!r}"):
            self._client.load_model(model, **self._call)

    # Inference ---------------------------------------------------------------------------------
    def infer(self, model: str, inputs, version: str = "", outputs: list[str] | None = None) -> dict:
        """Run one request and return ``{output name: array}``.

        Args:
            model: the model name.
            inputs: ``{input name: array}``, or one array for a single-input model.
            version: a version number as text; "" lets the server's version policy choose.
            outputs: output names to return; None returns every output.
        """
        inputs = self._named_inputs(model, version, inputs)
        requested = None
        if outputs is not None:
            requested = [self._module.InferRequestedOutput(name) for name in outputs]
        result = self._infer(model, version, inputs, requested)
        names = outputs or [output["name"] for output in self.metadata(model, version)["outputs"]]
        return {name: result.as_numpy(name) for name in names}

    def classify(self, model: str, inputs, top_k: int = 5, version: str = "",
                 output: str | None = None) -> list[list[Classification]]:
        """Top-k classes per sample, with labels when the model config names a labels file."""
        if top_k < 1:
            raise OptionError(f"top_k must be >= 1; received {top_k}")
        inputs = self._named_inputs(model, version, inputs)
        output = output or self.metadata(model, version)["outputs"][0]["name"]
        requested = [self._module.InferRequestedOutput(output, class_count=top_k)]
        values = self._infer(model, version, inputs, requested).as_numpy(output)
        values = np.asarray(values).reshape(-1, values.shape[-1]) if values.ndim > 1 else values.reshape(1, -1)
        return [[_classification(entry) for entry in row] for row in values]

    def _infer(self, model, version, inputs: dict, requested):
        from tritonclient.utils import np_to_triton_dtype  # lazy: a heavy library

        tensors = []
        for name, array in inputs.items():
            array = np.ascontiguousarray(array)
            tensor = self._module.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
            if self.protocol == "http":
                tensor.set_data_from_numpy(array, binary_data=True)
            else:
                tensor.set_data_from_numpy(array)
            tensors.append(tensor)
        with self._errors(f"a request to model {model!r}"):
            return self._client.infer(model, tensors, model_version=version, outputs=requested, **self._call)

    def _named_inputs(self, model: str, version: str, inputs) -> dict:
        if isinstance(inputs, dict):
            return inputs
        names = [entry["name"] for entry in self.metadata(model, version)["inputs"]]
        if len(names) != 1:
            raise OptionError(f"model {model!r} has {len(names)} inputs ({', '.join(names)}); "
                              "pass a dict {name: array}")
        return {names[0]: np.asarray(inputs)}

    def _json(self) -> dict:
        return {"as_json": True, **self._call} if self.protocol == "grpc" else {}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()

    def __enter__(self) -> "TritonClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _looks_unreachable(message: str, status: str) -> bool:
    if "UNAVAILABLE" in status or "DEADLINE_EXCEEDED" in status:
        return True
    lowered = message.lower()
    return ("failed to connect" in lowered or "connection refused" in lowered
            or "socket closed" in lowered or "connection reset" in lowered)


def _classification(entry) -> Classification:
    text = entry.decode() if isinstance(entry, bytes) else str(entry)
    score, index, *label = text.split(":", 2)
    return Classification(score=float(score), index=int(index), label=label[0] if label else None)
