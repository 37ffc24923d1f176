"""What every command shares: turning EdgekitErrors into one line and an exit code."""

from __future__ import annotations

import errno
import os
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

import click
from click.core import ParameterSource

from edgekit._compat import os_error_from_tensorflow
from edgekit.errors import EdgekitError, OptionError
from edgekit.outputs import COMMITTED


class EdgekitGroup(click.Group):
    """A click group whose commands report EdgekitError as ``error: ...`` and exit non-zero."""

    def invoke(self, ctx):
        previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        try:
            return super().invoke(ctx)
        except EdgekitError as error:
            _report(error, f"error: {error}{_details_note(error)}")
            sys.exit(error.exit_code)
        except KeyboardInterrupt:
            if COMMITTED:  # the result was complete and in place before the interruption came
                click.echo(f"interrupted after {COMMITTED[-1]} was written; it is complete",
                           err=True)
                sys.exit(0)
            click.echo("error: interrupted; nothing was written", err=True)
            sys.exit(130)
        except OSError as error:  # the disk, permissions, the OS: one line, never a traceback
            _report(error, f"error: {os_error_message(error)}")
            sys.exit(1)
        except ImportError as error:
            if not isinstance(error.__cause__ or error.__context__, KeyboardInterrupt):
                raise
            click.echo("error: interrupted while loading libraries; nothing was written", err=True)
            sys.exit(130)
        except Exception as error:
            converted = os_error_from_tensorflow(error)
            if converted is None:
                raise
            _report(error, f"error: {os_error_message(converted)}")
            sys.exit(1)
        finally:
            signal.signal(signal.SIGTERM, previous)


_OS_ERROR_MEANINGS = {
    errno.ENOSPC: "the disk is full; free some space and run again",
    errno.EDQUOT: "the disk quota is used up; free some space and run again",
    errno.EACCES: "permission denied; choose a folder you can write, or fix its permissions",
    errno.EPERM: "operation not permitted; choose a folder you can write",
    errno.EROFS: "the file system is read-only; write the output somewhere else",
    errno.EMFILE: "too many open files in this process; raise the limit (ulimit -n) and run again",
    errno.ENFILE: "too many open files on this machine; close some programs and run again",
    errno.ENAMETOOLONG: "the file name is too long; choose a shorter name",
    errno.ENOENT: "no such file or folder; check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder; check the path",
    errno.EISDIR: "it is a folder where a file was expected; check the path",
}


def os_error_message(error: OSError) -> str:
    """One line: the path, what went wrong and what the user can do."""
    where = error.filename or "a file"
    if error.filename2:
        where = f"{error.filename} -> {error.filename2}"
    meaning = _OS_ERROR_MEANINGS.get(error.errno, error.strerror or type(error).__name__)
    return f"cannot use {where}: {meaning} ({errno.errorcode.get(error.errno, 'OSError')})"


def verbose() -> bool:
    """True under ``edgekit --verbose`` (which sets EDGEKIT_VERBOSE=1 for the whole run)."""
    return os.environ.get("EDGEKIT_VERBOSE") == "1"


def _report(error: BaseException, line: str) -> None:
    """The one line; under --verbose first the chained traceback (every cause) and any details."""
    if verbose():
        traceback.print_exception(error)
        details = getattr(error, "details", None)
        if details:
            click.echo(f"--- what the library printed ---\n{details.rstrip()}\n---", err=True)
    click.echo(line, err=True)


def _details_note(error: EdgekitError) -> str:
    """Where the whole library output went, when the one line only summarises it."""
    if not error.details or verbose():
        return ""
    try:
        folder = Path(tempfile.gettempdir()) / "edgekit-logs"
        folder.mkdir(exist_ok=True)
        path = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        path.write_text(error.details)
    except OSError:
        return " (run with --verbose for the library's whole output)"
    return f" (the library's whole output: {path})"


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def given_options(ctx: click.Context, names: list[str]) -> dict:
    """The options the user typed (not click defaults), so library defaults stay the only ones."""
    given = {}
    for name in names:
        source = ctx.get_parameter_source(name)
        if source in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
            given[name] = ctx.params[name]
    return given


def parse_key_values(pairs: tuple[str, ...], flag: str) -> dict:
    """``("alpha=0.35", "input_size=48")`` -> ``{"alpha": 0.35, "input_size": 48}``."""
    parsed = {}
    for pair in pairs:
        key, separator, text = pair.partition("=")
        if not separator or not key:
            raise OptionError(f"{flag} takes KEY=VALUE; received {pair!r}. Example: {flag} alpha=0.5")
        parsed[key.strip()] = _plain_value(text.strip())
    return parsed


def _plain_value(text: str):
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


PREPROCESS_HELP = ("The model's input contract: how raw samples become its input. "
                   "scale=S,mean=M,std=D ((x * S - M) / D; mean / std may be per-channel lists, "
                   "e.g. mean=0.49,0.48,0.45) or none (the model takes raw values). "
                   "[default: the model folder's record, or the model's own Rescaling / "
                   "Normalization layer; required for a model file without either]")


def model_loading_options(command):
    """``--preprocess``, ``--custom-objects`` and ``--unsafe-deserialization``, shared by commands."""
    command = click.option(
        "--unsafe-deserialization", is_flag=True, default=None,
        help="Let a model file you trust run the Python code it holds (Lambda layers); refused "
             "by default. Recorded in the manifest.")(command)
    command = click.option(
        "--custom-objects", metavar="FILE.py|MODULE",
        help="The module defining the model's custom layers (its classes and functions, or a "
             "CUSTOM_OBJECTS dict). Recorded in the manifest with its sha256.")(command)
    command = click.option("--preprocess", metavar="SPEC", help=PREPROCESS_HELP)(command)
    return command
