"""Failures of the ``parkcarbon`` command as one line each: what failed, naming the host and port, the
file or the value, and what to do about it. :func:`parkcarbon.cli.main` is the one place that catches
them; subcommands raise (or let through) the project's errors, ``OSError`` and httpx's errors.

The checks here (:func:`require_broker`, :func:`require_influx`) let a command that would otherwise
retry or wait fail at once, before any slow work, when a service is not running.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from park.settings import Settings

START_SERVICES = "start it with `parkcarbon services up`"


class CliError(RuntimeError):
    """A failure whose message is already the one line to print (after ``parkcarbon <command>: ``)."""


def require_broker(settings: Settings, timeout_s: float = 3.0) -> None:
    """Raise CliError unless something accepts TCP connections at the configured MQTT broker."""
    host, port = settings.mqtt.host, settings.mqtt.port
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return
    except OSError as exc:
        reason = _os_reason(exc)
        raise CliError(f"Mosquitto at mqtt://{host}:{port} is not reachable: {reason}; {START_SERVICES}") from exc


def require_influx(settings: Settings, timeout_s: float = 3.0) -> None:
    """Raise CliError unless InfluxDB answers ``/ping`` at the configured URL (the tasks' own check,
    :func:`pipeline.checks.require_influx`, with the command line's hint)."""
    from pipeline.checks import UnreachableError
    from pipeline.checks import require_influx as ping

    try:
        ping(settings.influx, timeout_s, hint=START_SERVICES)
    except UnreachableError as exc:
        raise CliError(str(exc)) from None


def require_files(paths: dict[str, Path | None]) -> None:
    """Raise CliError naming the option and the path of the first given file that is not there (the
    readers would otherwise report it as a bad row of each file)."""
    for option, path in paths.items():
        if path is not None and not path.is_file():
            raise CliError(f"{option} {path}: no such file")


def one_line(exc: BaseException, settings: Settings | None = None) -> str:
    """The reason ``exc`` gives, in one line, naming what it can (file, host and port, setting)."""
    from park.registry import RegistryError
    from park.store import InfluxError

    if isinstance(exc, CliError):
        return _flatten(str(exc))
    if isinstance(exc, RegistryError):
        return _registry(exc)
    if isinstance(exc, InfluxError):
        return _influx(exc)
    if isinstance(exc, httpx.HTTPError):
        return _httpx(exc)
    if isinstance(exc, OSError):
        return _os(exc, settings)
    if isinstance(exc, KeyError):  # e.g. an unknown factor set: str() of a KeyError quotes its text
        return _flatten(str(exc.args[0]) if exc.args else type(exc).__name__)
    text = _validation(exc) or _sqlalchemy(exc, settings)
    if text is not None:
        return text
    if isinstance(exc, (ValueError, RuntimeError)) and str(exc):
        return _flatten(str(exc))
    return f"unexpected {type(exc).__name__}: {_flatten(str(exc)) or 'no message'} (run with --debug for the traceback)"


def _flatten(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return "; ".join(lines)


def _registry(exc: BaseException) -> str:
    problems: list[str] = getattr(exc, "problems", [])
    path = getattr(exc, "path", "")
    if len(problems) == 1:
        return _flatten(problems[0])
    first = _flatten(problems[0]) if problems else ""
    return f"{path}: {len(problems)} problems, the first: {first} (all of them: parkcarbon registry check {path})"


_UNREACHABLE = re.compile(r"^InfluxDB at (?P<url>\S+) (?:is )?not reachable: (?P<reason>.*)$", re.DOTALL)


def _influx(exc: BaseException) -> str:
    text = str(exc)
    match = _UNREACHABLE.match(text)
    if match is None:
        return _flatten(text)
    cause = exc.__cause__
    reason = _httpx_reason(cause) if isinstance(cause, httpx.TransportError) else _flatten(match["reason"])
    return f"InfluxDB at {match['url']} is not reachable: {reason}; {START_SERVICES}"


def _httpx(exc: httpx.HTTPError) -> str:
    try:
        url = exc.request.url
    except RuntimeError:  # an error raised without its request
        return _flatten(str(exc)) or type(exc).__name__
    where = f"{url.scheme}://{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"{where} answered HTTP {exc.response.status_code} to {url.path}"
    if isinstance(exc, httpx.TimeoutException):
        return f"{where} did not answer in time ({type(exc).__name__})"
    return f"{where} is not reachable: {_httpx_reason(exc)}"


def _httpx_reason(exc: BaseException) -> str:
    """'connection refused' rather than '[Errno 111] Connection refused'."""
    context = exc.__context__ or exc.__cause__
    while context is not None and not isinstance(context, OSError) and (context.__context__ or context.__cause__):
        context = context.__context__ or context.__cause__
    if isinstance(context, OSError):
        return _os_reason(context)
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", _flatten(str(exc)))
    return text[:1].lower() + text[1:] if text else type(exc).__name__


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer (timed out)"
    reason = exc.strerror or re.sub(r"^\[Errno -?\d+\]\s*", "", str(exc)) or type(exc).__name__
    return reason[:1].lower() + reason[1:]


def _os(exc: OSError, settings: Settings | None) -> str:
    reason = _os_reason(exc)
    if exc.filename is None:
        return reason
    path = Path(str(exc.filename))
    name = str(path)
    if settings is not None:
        named = {
            settings.registry: "the registry file",
            settings.enterprises: "the enterprises file",
            settings.manual_activity: "the manual activity file",
            settings.policy: "the policy file",
        }
        for known, what in named.items():
            if known is not None and _same(known, path):
                setting = {
                    "the registry file": "PARKCARBON_REGISTRY",
                    "the enterprises file": "PARKCARBON_ENTERPRISES",
                    "the manual activity file": "PARKCARBON_MANUAL_ACTIVITY",
                    "the policy file": "PARKCARBON_POLICY",
                }[what]
                name = f"{what} {path} ({setting})"
                break
    if exc.filename2 is not None:
        name = f"{name} → {exc.filename2}"
    if isinstance(exc, FileNotFoundError):
        return f"{name}: no such file or directory"
    return f"{name}: {reason}"


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b


def _validation(exc: BaseException) -> str | None:
    """A setting from the environment that pydantic refused, named as its variable."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return None
    errors = exc.errors()
    if not errors:
        return _flatten(str(exc))
    first = errors[0]
    loc = [str(part) for part in first["loc"]]
    variable = "PARKCARBON_" + "__".join(loc).upper()
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    given = first.get("input")
    value = f" {given!r}" if isinstance(given, (str, int, float)) else ""
    return f"setting {variable}{value}: {first['msg']}{more}"


def _sqlalchemy(exc: BaseException, settings: Settings | None) -> str | None:
    """The ledger's database could not be opened or refused a statement: name it (without password)."""
    try:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import DBAPIError, SQLAlchemyError
    except ImportError:  # pragma: no cover - sqlalchemy is a dependency
        return None
    if not isinstance(exc, SQLAlchemyError):
        return None
    where = "the ledger database"
    if settings is not None:
        where = f"the ledger database {make_url(settings.ledger_url).render_as_string(hide_password=True)}"
    original = exc.orig if isinstance(exc, DBAPIError) else exc
    reason = _flatten(str(original).split("\n(Background on this error")[0]) or type(exc).__name__
    return f"{where}: {reason}"
