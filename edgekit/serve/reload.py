"""Making a running Triton server load a model as its repository now holds it.

A server started by ``edgekit serve`` runs a staging copy of the repository (see
:mod:`edgekit.serve.staging`); each staged config tells, in two parameters, where the copy and
its source are. :func:`reload_model` reads them from the server, checks the server serves the
repository deployed into, re-stages the model there and calls Triton's load API (the server must
run with ``--model-control explicit``; one in ``poll`` mode is given a few seconds to find the
version itself). A full Triton serving the repository itself (``--backend native``) is simply
asked to load.

Example:
    >>> reload_model("http://127.0.0.1:8000", "triton_repo", "cnn-digits", version=2)
    {'url': 'http://127.0.0.1:8000', 'staged': '/tmp/edgekit-serve-x/repository', 'ready_versions': [2]}
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from edgekit.errors import InferenceError, ServeError
from edgekit.runtimes.triton_client import TritonClient
from edgekit.serve.staging import SOURCE_REPOSITORY_PARAMETER, STAGED_REPOSITORY_PARAMETER, restage_model

# Triton's message when a server does not allow explicit load / unload (mode none or poll).
NOT_EXPLICIT = "explicit model load / unload is not allowed"
# How long to let a server in poll mode find a new version (edgekit serve polls every 2 s).
POLL_WAIT_SECONDS = 6.0


def reload_model(url: str, repository: str | os.PathLike, model_name: str, version: int | None = None,
                 timeout: float = 60.0) -> dict:
    """Make the server at ``url`` load ``model_name`` as the repository now holds it.

    Args:
        url: the server's HTTP or gRPC URL.
        repository: the repository the model was deployed into.
        model_name: the model to load.
        version: the version that must be ready afterwards; None checks none.
        timeout: seconds to wait for each request.

    Returns:
        ``{"url", "staged" (the staging copy re-staged, or None), "ready_versions"}``.

    Raises:
        ServeError: when the server cannot be reached, serves another repository, was not
            started with ``--model-control explicit``, or does not get the version ready.
    """
    with TritonClient(url, timeout=timeout) as client:
        staged = served_staging(client, repository, model_name)
        if staged is not None:
            restage_model(repository, staged, model_name)
        try:
            client.load_model(model_name)
        except ServeError as error:
            if NOT_EXPLICIT not in str(error):
                raise
            # Mode "poll" finds the (re-staged) version itself within its poll interval; mode
            # "none" never does, and Triton's refusal is the same for both.
            if version is None or not _wait_ready(client, model_name, version, POLL_WAIT_SECONDS):
                raise ServeError(
                    f"Triton at {client.url} does not load models on request (it was started without "
                    "--model-control explicit); the version is in the repository: restart that server, "
                    "or serve with `edgekit serve --model-control explicit` to deploy without restarts"
                ) from error
        ready = [known for known in _versions(client, model_name) if _ready(client, model_name, known)]
        if version is not None and version not in ready:
            raise ServeError(
                f"Triton at {client.url} loaded model {model_name!r} but version {version} is not "
                f"ready (ready: {ready or 'none'}); check the model's version_policy in "
                f"{Path(repository) / model_name / 'config.pbtxt'} and the server log"
            )
    return {"url": client.url, "staged": str(staged) if staged else None, "ready_versions": ready}


def check_server(url: str, repository: str | os.PathLike, timeout: float = 10.0) -> Path | None:
    """Check the server at ``url`` answers and serves ``repository``; return its staging copy.

    Raises:
        ServeError: see :func:`served_staging`, or when the server cannot be reached.
    """
    with TritonClient(url, timeout=timeout) as client:
        return served_staging(client, repository)


def served_staging(client, repository: str | os.PathLike, model_name: str = "") -> Path | None:
    """The staging copy the server runs for ``repository``, or None for a server on it directly.

    Args:
        client: a :class:`~edgekit.runtimes.triton_client.TritonClient` (``models()``, ``config()``).
        repository: the repository deployed into.
        model_name: a model whose config to read first.

    Raises:
        ServeError: when the server runs a staging copy of another repository, or one this
            machine does not have.
    """
    repository = Path(repository).resolve()
    names = sorted({entry["name"] for entry in client.models() if entry.get("state") == "READY"},
                   key=lambda name: name != model_name)  # this model's own config first
    for name in names:
        parameters = client.config(name).get("parameters") or {}
        source = _parameter(parameters, SOURCE_REPOSITORY_PARAMETER)
        staged = _parameter(parameters, STAGED_REPOSITORY_PARAMETER)
        if not source or not staged:
            continue
        if Path(source).resolve() != repository:
            raise ServeError(
                f"Triton at {client.url} serves repository {source}, not {repository}; pass "
                f"--repository {source}, or --reload the URL of the server on {repository}"
            )
        if not Path(staged).is_dir():
            raise ServeError(f"Triton at {client.url} runs the staging copy {staged}, which this machine "
                             "does not have; run deploy on the server's machine")
        return Path(staged)
    return None


def _wait_ready(client, model_name: str, version: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _ready(client, model_name, version):
            return True
        time.sleep(0.25)
    return False


def _ready(client, model_name: str, version: int) -> bool:
    try:
        return client.is_model_ready(model_name, str(version))
    except InferenceError:  # gRPC refuses a readiness question about a version it does not know
        return False


def _parameter(parameters: dict, key: str) -> str:
    value = parameters.get(key)
    return value.get("string_value", "") if isinstance(value, dict) else str(value or "")


def _versions(client, model_name: str) -> list[int]:
    return sorted({int(entry["version"]) for entry in client.models()
                   if entry.get("name") == model_name and str(entry.get("version", "")).isdigit()})


__all__ = ["NOT_EXPLICIT", "POLL_WAIT_SECONDS", "check_server", "reload_model", "served_staging"]
