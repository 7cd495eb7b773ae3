"""The ``parkcarbon`` command as a newcomer meets it: with the services not started, and with a file
that is not there, every command fails with one line naming the host and port or the file, no
traceback, and an exit code other than 0. The commands are enumerated from ``build_parser()``, so a
new command is run here too (an argument this test cannot fill in fails it, naming the argument).
Runs without any service: the ports are free ones nobody listens on."""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from parkcarbon.cli import build_parser, main
from scoring.profiles import profile_ids

ROOT = Path(__file__).resolve().parent.parent

# Commands that start the services themselves: run only with a missing registry, where they must fail
# before starting anything.
STARTS_SERVICES = {"services up", "demo"}
# Commands that need neither a service nor an input file, and so succeed with both missing.
NEEDS_NOTHING = {"services down", "services tls-certs", "airflow down"}
# With the services down (and the files there), these must fail naming the service's host and port.
NEEDS_A_SERVICE = {
    "simulate": "mqtt://127.0.0.1:{mqtt}",
    "collect": "http://127.0.0.1:{influx}",
    "monthly": "http://127.0.0.1:{influx}",
    "ledger settle": "http://127.0.0.1:{influx}",
    "dashboards push": "http://127.0.0.1:{grafana}",
    "platform serve": "http://127.0.0.1:{influx}",
    "nearzero": "http://127.0.0.1:{influx}",  # without files: the park's stored results
    "services status": "parkcarbon services up",
    "services rotate-password": "parkcarbon services up",
    "airflow up": "http://127.0.0.1:{influx}",  # the tasks' InfluxDB, checked before Airflow starts
    "airflow status": "parkcarbon airflow up",
}


def _previous_month() -> str:
    now = datetime.now(UTC)
    year, month = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def leaf_commands(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every runnable command: each subparser's leaves, and each choice of a positional ``action``."""
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if subparsers:
        return [leaf for name, sub in subparsers[0].choices.items() for leaf in leaf_commands(sub, (*words, name))]
    actions = [a for a in parser._actions if a.dest == "action" and a.choices]
    if actions:
        return [(*words, str(choice)) for choice in actions[0].choices]
    return [words]


def leaf_parser(words: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = build_parser()
    for word in words:
        subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subparsers:
            break
        parser = subparsers[0].choices[word]
    return parser


def argv_for(words: tuple[str, ...], values: dict[str, str], missing: Path) -> list[str]:
    """The command with its required arguments filled in: a missing file for every path."""
    argv = list(words)
    for action in leaf_parser(words)._actions:
        if isinstance(action, argparse._HelpAction) or action.dest == "action":
            continue
        positional = not action.option_strings
        if not (action.required or (positional and action.nargs is None)):
            continue
        if action.type is Path:
            value = str(missing / f"{action.dest}.csv")
        elif action.dest in values:
            value = values[action.dest]
        else:
            pytest.fail(f"add a value for argument {action.dest!r} of `parkcarbon {' '.join(words)}` to this test")
        argv += [value] if positional else [action.option_strings[0], value]
    return argv


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def down(tmp_path, monkeypatch):
    """An empty run directory, and ports where nothing listens; returns the ports and the missing directory."""
    ports = {"mqtt": _free_port(), "influx": _free_port(), "rpc": _free_port(), "grafana": _free_port()}
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in list(os.environ):
        if name.startswith("PARKCARBON_") or name == "AIRFLOW_HOME":
            monkeypatch.delenv(name)
    monkeypatch.setenv("PARKCARBON_RUN_DIR", str(run_dir))
    monkeypatch.setenv("PARKCARBON_MQTT__PORT", str(ports["mqtt"]))
    monkeypatch.setenv("PARKCARBON_INFLUX__PORT", str(ports["influx"]))
    monkeypatch.setenv("PARKCARBON_INFLUX__RPC_PORT", str(ports["rpc"]))
    monkeypatch.setenv("GRAFANA_TOKEN", "not-a-token")
    monkeypatch.chdir(tmp_path)  # nothing a command writes by default lands in the project
    return ports, tmp_path / "missing"


def _values(ports: dict[str, int]) -> dict[str, str]:
    return {
        "year": "2025",
        "month": _previous_month(),
        "start": "2025-03-01",
        "end": "2025-03-02",
        "amount": "1",
        "vintage": "2025",
        "reference": "r-1",
        "source": "E01",
        "target": "E02",
        "enterprise": "E01",
        "kind": "ccer",
        "serial": "CCER-0001",
        "origin": "CCER registry, project 0001",
        "url": f"http://127.0.0.1:{ports['grafana']}",
        "factor_set": "cn-national-2023",
        "profile": profile_ids()[0],
        "username": "first-admin",
        "role": "platform_app",
    }


def _extra(command: str, tmp: Path) -> list[str]:
    """Optional arguments that keep a command's default output out of the project."""
    if command.startswith("services "):
        return ["--out", str(tmp / "out"), *(["--user", "GW01"] if command == "services rotate-password" else [])]
    if command == "dashboards build":
        return ["--out", str(tmp / "boards")]
    return []


def _run(capsys, argv: list[str]) -> tuple[int, str, float]:
    began = time.monotonic()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    elapsed = time.monotonic() - began
    return code, capsys.readouterr().err, elapsed


def _one_line(command: str, code: int, err: str) -> str:
    assert code != 0, f"`parkcarbon {command}` exited 0"
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"`parkcarbon {command}` printed {len(lines)} lines on stderr:\n{err}"
    assert lines[0].startswith(f"parkcarbon {command}: "), lines[0]
    return lines[0]


COMMANDS = leaf_commands(build_parser())


def test_every_command_is_enumerated():
    names = {" ".join(words) for words in COMMANDS}
    assert {"monthly", "ledger settle", "services up", "registry check", "dashboards push"} <= names
    assert len(names) >= 20


@pytest.mark.parametrize("words", COMMANDS, ids=[" ".join(w) for w in COMMANDS])
def test_a_missing_file(words, down, capsys, monkeypatch):
    """The registry file (and every path argument) missing: one line naming it."""
    ports, missing = down
    command = " ".join(words)
    registry = missing / "registry.yaml"
    monkeypatch.setenv("PARKCARBON_REGISTRY", str(registry))
    argv = argv_for(words, _values(ports), missing) + _extra(command, missing.parent)
    if command == "ledger settle":
        argv += ["--credits", str(missing / "credits_annual.csv")]
    code, err, elapsed = _run(capsys, argv)
    assert elapsed < 10, f"`parkcarbon {command}` took {elapsed:.1f} s to fail"
    if command in NEEDS_NOTHING:
        assert code == 0 and "Traceback" not in err, err
        return
    line = _one_line(command, code, err)
    hints = ("parkcarbon services up", "parkcarbon airflow up", "parkcarbon registry import")
    assert str(missing) in line or any(hint in line for hint in hints), line


@pytest.mark.parametrize(
    "words", [w for w in COMMANDS if " ".join(w) not in STARTS_SERVICES], ids=lambda w: " ".join(w)
)
def test_services_down(words, down, capsys):
    """Mosquitto and InfluxDB not started: a command that needs one fails at once naming host and port
    and how to start it; any other command does its work or fails in one line."""
    ports, missing = down
    command = " ".join(words)
    files = missing.parent / "inputs"
    files.mkdir()
    argv = argv_for(words, _values(ports), files) + _extra(command, missing.parent)
    code, err, elapsed = _run(capsys, argv)
    assert elapsed < 10, f"`parkcarbon {command}` took {elapsed:.1f} s to fail"
    assert "Traceback" not in err, err
    if command in NEEDS_A_SERVICE:
        line = _one_line(command, code, err)
        assert NEEDS_A_SERVICE[command].format(**ports) in line, line
        if "InfluxDB" in line or "Mosquitto" in line:
            assert line.endswith("start it with `parkcarbon services up`"), line
    elif code != 0:
        _one_line(command, code, err)


def test_services_down_messages(down, capsys):
    ports, _ = down
    _, err, _ = _run(capsys, ["simulate", "--start", "2025-03-01", "--end", "2025-03-02"])
    assert err.strip() == (
        f"parkcarbon simulate: Mosquitto at mqtt://127.0.0.1:{ports['mqtt']} is not reachable: connection refused;"
        " start it with `parkcarbon services up`"
    )
    _, err, _ = _run(capsys, ["monthly", _previous_month()])
    assert err.strip() == (
        f"parkcarbon monthly: InfluxDB at http://127.0.0.1:{ports['influx']} is not reachable: connection refused;"
        " start it with `parkcarbon services up`"
    )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["monthly", "2025-13"], "parkcarbon monthly: argument month: '2025-13' is not a month as YYYY-MM"),
        (["monthly", "2099-01"], "parkcarbon monthly: 2099-01 has not ended yet"),
        (["monthly", "2019-05"], "parkcarbon monthly: 2019-05 is before the park's metering start 2025-01-01"),
        (["simulate", "--start", "2025-02-30", "--end", "2025-03-01"], "argument --start: '2025-02-30' is not a day"),
        (["simulate", "--start", "2025-03-02", "--end", "2025-03-01"], "--end 2025-03-01 must be after --start"),
        (["simulate", "--start", "2025-03-01", "--end", "2025-03-02", "--faults", "gap:x"], "parkcarbon simulate: "),
        (["ledger", "settle", "twenty"], "argument year: invalid int value: 'twenty'"),
    ],
)
def test_bad_values_are_named(argv, expected, down, capsys):
    code, err, _ = _run(capsys, argv)
    assert code != 0 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and expected in err, err


def test_an_unknown_factor_set(down, capsys, tmp_path):
    (tmp_path / "a.csv").write_text("enterprise,period,source,quantity,unit\n")
    (tmp_path / "e.csv").write_text("enterprise,name,industry,year,value_added_10k_cny\n")
    argv = ["score", "--activity", "a.csv", "--enterprises", "e.csv", "--year", "2025", "--factor-set", "cn-1999"]
    code, err, _ = _run(capsys, [*argv, "--out", "out"])
    assert code != 0 and len(err.strip().splitlines()) == 1 and "cn-1999" in err and "cn-national-2023" in err, err


def test_every_argument_has_help():
    def walk(parser: argparse.ArgumentParser, words: list[str]) -> list[str]:
        found = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found += walk(sub, [*words, name])
            elif not action.help and not isinstance(action, argparse._HelpAction):
                found.append(f"{' '.join(words)} {action.option_strings or action.dest}")
        return found

    assert walk(build_parser(), ["parkcarbon"]) == []
    services = leaf_parser(("services",)).format_help()
    for action in ("up", "down", "status", "rotate-password", "docker-secrets"):
        assert re.search(rf"^\s+{action}\s+\w", services, re.MULTILINE), f"services {action} has no help line"


def test_the_installed_command(tmp_path):
    """The real entry point: one line without --debug, the traceback with it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARKCARBON_")}
    env["PARKCARBON_RUN_DIR"] = str(tmp_path)
    missing = tmp_path / "nowhere.yaml"
    command = [sys.executable, "-m", "parkcarbon"]
    quiet = subprocess.run([*command, "registry", "check", str(missing)], capture_output=True, text=True, env=env)
    assert quiet.returncode == 1 and quiet.stdout == ""
    assert quiet.stderr == f"parkcarbon registry check: {missing}: no such file or directory\n"
    loud = subprocess.run(
        [*command, "--debug", "registry", "check", str(missing)], capture_output=True, text=True, env=env
    )
    assert loud.returncode == 1 and "Traceback" in loud.stderr and "FileNotFoundError" in loud.stderr
