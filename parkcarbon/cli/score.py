"""``parkcarbon score``: score a year from activity and enterprise files, writing CSVs and run.json.

Contract (other tools call it)::

    parkcarbon score --activity A.csv --enterprises E.csv --year YYYY --factor-set ID
                     [--base-year YYYY] [--policy P.yaml] [--registry R.yaml] [--skip-bad-rows] --out DIR

Writes ``emissions.csv`` (enterprise rows, every month of the year in A), ``credits.csv``,
``workshop_emissions.csv``, ``near_zero.csv`` and ``run.json``; values unrounded. Bad rows are all
printed with file, row, column and reason, and the command exits 2, unless ``--skip-bad-rows``.
Running twice on the same inputs writes identical files.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib.metadata import version
from pathlib import Path

from park.registry import NearZeroTarget, RegistryError, load_registry
from park.settings import Settings
from scoring.accounting import EMISSION_COLUMNS
from scoring.audit import file_sha256
from scoring.credits import CREDIT_COLUMNS, EXTRA_CREDIT_COLUMNS
from scoring.engine import score
from scoring.factors import FactorSet, UnknownFactorSetError, factor_set, factor_set_ids
from scoring.inputs import RowError, read_activity, read_enterprises
from scoring.policy import Policy, PolicyError, load_policy

EMISSION_FILE_COLUMNS = ["enterprise", "period", *EMISSION_COLUMNS, "factor_set", "policy_version", "inputs_sha256"]


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("score", help="score a year from activity and enterprise files (CSV or Excel)")
    p.add_argument(
        "--activity",
        type=Path,
        required=True,
        help="CSV (UTF-8 or GBK), .xlsx or .xls: enterprise, period, source, quantity, unit [, workshop]"
        " (or the Chinese headers)",
    )
    p.add_argument(
        "--enterprises",
        type=Path,
        required=True,
        help="CSV, .xlsx or .xls: enterprise, name, industry, year, value_added_10k_cny (or the Chinese headers)",
    )
    p.add_argument("--year", type=int, required=True, help="the year to score, e.g. 2026")
    p.add_argument("--factor-set", required=True, help=f"one of {', '.join(factor_set_ids())}")
    p.add_argument(
        "--base-year",
        type=int,
        help="default: the policy's, else the earliest year in which an enterprise has activity data and value added",
    )
    p.add_argument("--policy", type=Path, help="policy YAML (default: the packaged policy)")
    p.add_argument("--registry", type=Path, help="registry YAML, for workshops' near-zero targets")
    p.add_argument("--skip-bad-rows", action="store_true", help="score the good rows; bad ones go to run.json")
    p.add_argument(
        "--later-row-wins",
        action="store_true",
        help="a row repeating an earlier one (same enterprise, workshop, month, source) replaces it;"
        " run.json lists each replacement",
    )
    p.add_argument("--out", type=Path, required=True, help="directory for the CSV files and run.json (created)")
    p.set_defaults(handler=run)


def _fail(message: str) -> int:
    print(f"parkcarbon score: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace, _settings: Settings) -> int:
    from parkcarbon.cli.errors import require_files

    require_files(
        {
            "--activity": args.activity,
            "--enterprises": args.enterprises,
            "--policy": args.policy,
            "--registry": args.registry,
        }
    )
    try:
        factors = factor_set(args.factor_set)
        policy = load_policy(args.policy)
        targets: dict[str, NearZeroTarget] = {}
        if args.registry:
            registry = load_registry(args.registry)
            targets = {w.id: w.near_zero for w in registry.workshops if w.near_zero is not None}
    except (UnknownFactorSetError, PolicyError, RegistryError, OSError) as exc:
        return _fail(str(exc).strip("'\""))

    firms = read_enterprises(args.enterprises, later_wins=args.later_row_wins)
    enterprises = firms.frame
    known = set(enterprises["enterprise"]) if not enterprises.empty else None
    rows = read_activity(args.activity, known, policy.gas_m3_to_nm3, later_wins=args.later_row_wins)
    activity = rows.frame
    errors = firms.errors + rows.errors
    notes = firms.notes + rows.notes
    for note in notes:
        print(note, file=sys.stderr)
    if errors and not args.skip_bad_rows:
        for error in sorted(errors):
            print(error, file=sys.stderr)
        return _fail(f"{len(errors)} bad row(s); fix them, or pass --skip-bad-rows to score the rest")
    if enterprises.empty or activity.empty:
        return _fail("no usable rows in the enterprises or activity file")
    if not (activity["period"].str.slice(0, 4) == str(args.year)).any():
        return _fail(f"no activity data for {args.year} in {args.activity.name}")

    try:
        result = score(activity, enterprises, args.year, factors, policy, args.base_year, targets=targets)
    except ValueError as exc:
        return _fail(str(exc))

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    in_year = result.emissions["period"].str.startswith(f"{args.year}-")
    own = result.emissions["workshop"] == ""
    files = {
        "emissions.csv": result.emissions[in_year & own][EMISSION_FILE_COLUMNS],
        "workshop_emissions.csv": result.emissions[in_year & ~own][["workshop", *EMISSION_FILE_COLUMNS]],
        "credits.csv": result.credits[
            [*CREDIT_COLUMNS, *EXTRA_CREDIT_COLUMNS, "factor_set", "policy_version", "inputs_sha256"]
        ],
        "near_zero.csv": result.near_zero,
    }
    for name, frame in files.items():
        sort_by = [c for c in ("enterprise", "workshop", "period") if c in frame]
        frame.sort_values(sort_by).to_csv(out / name, index=False, lineterminator="\n")
    _write_run_record(out, args, result.base_year, factors, policy, errors, notes, list(files))
    print(f"scored {args.year}: {len(result.credits)} enterprises, {int(in_year.sum())} emission rows → {out}")
    if errors:
        print(f"skipped {len(errors)} bad row(s), listed in {out / 'run.json'}", file=sys.stderr)
    return 0


def _write_run_record(
    out: Path,
    args: argparse.Namespace,
    base_year: int,
    factors: FactorSet,
    policy: Policy,
    skipped: list[RowError],
    notes: list[str],
    outputs: list[str],
) -> None:
    record = {
        "parkcarbon": version("parkcarbon"),
        "year": args.year,
        "base_year": base_year,
        "policy": {"version": policy.version, "sha256": policy.sha256, "credits_basis": policy.credits_basis},
        "factor_set": {
            "id": factors.id,
            "file_version": factors.file_version,
            "file_sha256": factors.file_sha256,
            "electricity_location_t_per_mwh": factors.electricity.location_t_per_mwh,
            "electricity_location_source": factors.electricity.location_source,
            "electricity_residual_t_per_mwh": factors.electricity.residual_t_per_mwh,
            "electricity_residual_source": factors.electricity.residual_source,
            "natural_gas_t_per_10k_nm3": factors.fuels["natural_gas"].factor_t_per_unit,
            "heat_t_per_gj": factors.heat.t_per_gj,
        },
        "inputs": {
            "activity": {"file": args.activity.name, "sha256": file_sha256(args.activity)},
            "enterprises": {"file": args.enterprises.name, "sha256": file_sha256(args.enterprises)},
        },
        "skipped_rows": [str(e) for e in sorted(skipped)],
        "replaced_rows": notes,
        "outputs": {name: file_sha256(out / name) for name in outputs},
    }
    (out / "run.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
