"""``parkcarbon nearzero``: a year against a near-zero / zero-carbon profile, from the park's results
or from files.

Contract::

    parkcarbon nearzero --profile ID [--enterprise E] [--year Y]
    parkcarbon nearzero --profile ID --activity A.csv --enterprises E.csv --factor-set F
                        [--enterprise E] [--year Y] [--facts facts.yaml] [--policy P.yaml] [--json]
                        [--skip-bad-rows] [--later-row-wins]

Without files it prints what the monthly DAG stored (``NEARZERO_EVALUATION``) for the latest month
of the year in which the profile was evaluated: the profiles the registry selects, year to date.
With files it reads them with :func:`scoring.inputs.read_activity` / :func:`~scoring.inputs.read_enterprises`,
computes emissions with :func:`scoring.engine.score` and evaluates with
:func:`scoring.evaluation.evaluate`. Prints one table per subject (indicator, value, threshold,
status, gap and what closes it), or with ``--json`` the whole evaluation with its sources. The year
defaults to the latest year in the activity file. Exit 0 after an evaluation (whatever it found),
2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from park.settings import Settings
from scoring.engine import score
from scoring.evaluation import Evaluation, evaluate
from scoring.factors import UnknownFactorSetError, factor_set, factor_set_ids
from scoring.inputs import read_activity, read_enterprises
from scoring.policy import PolicyError, load_policy
from scoring.profiles import Facts, FactsError, ProfileError, load_facts, load_profile, profile_ids


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "nearzero", help="evaluate enterprises, workshops or the park against a near-zero-carbon profile"
    )
    p.add_argument("--profile", required=True, help=f"one of {', '.join(profile_ids())}, or a profile YAML file")
    p.add_argument(
        "--activity",
        type=Path,
        help="activity file, as for `parkcarbon score` (without it: the park's stored results in InfluxDB)",
    )
    p.add_argument("--enterprises", type=Path, help="with --activity: enterprises file with value added")
    p.add_argument("--factor-set", help=f"with --activity: one of {', '.join(factor_set_ids())}")
    p.add_argument("--enterprise", help="only this enterprise (and its workshops)")
    p.add_argument("--year", type=int, help="default: the latest year in the activity file or the stored results")
    p.add_argument("--facts", type=Path, help="reviewed manual facts (YAML); without them fact indicators are unknown")
    p.add_argument("--policy", type=Path, help="policy YAML (default: the packaged policy)")
    p.add_argument("--json", action="store_true", help="print the evaluation as JSON")
    p.add_argument("--skip-bad-rows", action="store_true", help="evaluate the good rows; list bad ones on stderr")
    p.add_argument("--later-row-wins", action="store_true", help="a repeated row replaces the earlier one")
    p.set_defaults(handler=run)


def _fail(message: str) -> int:
    print(f"parkcarbon nearzero: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace, settings: Settings) -> int:
    from parkcarbon.cli.errors import require_files

    if args.activity is None:
        return stored(args, settings)
    if args.enterprises is None or args.factor_set is None:
        return _fail("--activity needs --enterprises and --factor-set (or give none of them for the stored results)")

    files = {"--activity": args.activity, "--enterprises": args.enterprises, "--facts": args.facts}
    require_files({**files, "--policy": args.policy})
    try:
        profile = load_profile(args.profile)
        factors = factor_set(args.factor_set)
        policy = load_policy(args.policy)
        facts = load_facts(args.facts) if args.facts else Facts()
    except (ProfileError, UnknownFactorSetError, PolicyError, FactsError, OSError) as exc:
        return _fail(str(exc).strip("'\""))

    firms = read_enterprises(args.enterprises, later_wins=args.later_row_wins)
    known = set(firms.frame["enterprise"]) if not firms.frame.empty else None
    rows = read_activity(args.activity, known, policy.gas_m3_to_nm3, later_wins=args.later_row_wins)
    errors = firms.errors + rows.errors
    for note in firms.notes + rows.notes:
        print(note, file=sys.stderr)
    if errors:
        for error in sorted(errors):
            print(error, file=sys.stderr)
        if not args.skip_bad_rows:
            return _fail(f"{len(errors)} bad row(s); fix them, or pass --skip-bad-rows to evaluate the rest")
    activity, enterprises = rows.frame, firms.frame
    if activity.empty or enterprises.empty:
        return _fail("no usable rows in the enterprises or activity file")
    year = args.year or int(activity["period"].str.slice(0, 4).astype(int).max())
    try:
        result = score(activity, enterprises, year, factors, policy)
        evaluation = evaluate(result.emissions, enterprises, year, profile, factors, facts, enterprise=args.enterprise)
    except ValueError as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps(to_json(evaluation, facts), indent=2, ensure_ascii=False))
    else:
        print(render(evaluation))
    return 0


# -- output ---------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A JSON-safe value: NaN and NA become null, numpy scalars Python ones."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and not isinstance(value, list | dict | str):
        return _plain(value.item())
    return value


def to_json(evaluation: Evaluation, facts: Facts) -> dict[str, Any]:
    profile = evaluation.profile
    subjects = []
    for summary in evaluation.summary.to_dict("records"):
        mask = (evaluation.indicators["enterprise"] == summary["enterprise"]) & (
            evaluation.indicators["workshop"] == summary["workshop"]
        )
        indicators = [
            {k: _plain(v) for k, v in row.items() if k not in ("subject", "enterprise", "workshop", "year", "profile")}
            for row in evaluation.indicators[mask].to_dict("records")
        ]
        subjects.append({**{k: _plain(v) for k, v in summary.items()}, "indicators": indicators})
    return {
        "profile": {
            "id": profile.id,
            "version": profile.version,
            "sha256": profile.sha256,
            "name_zh": profile.name_zh,
            "name_en": profile.name_en,
            "documents": {k: d.model_dump() for k, d in profile.documents.items()},
        },
        "year": evaluation.year,
        "facts_sha256": facts.sha256 or None,
        "subjects": subjects,
        "series": [{k: _plain(v) for k, v in r.items()} for r in evaluation.series.to_dict("records")],
    }


def _show(value: Any, unit: str) -> str:
    value = _plain(value)
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return " or ".join(value)
    if isinstance(value, str):
        return value
    if unit == "-":
        return f"{100 * value:.1f} %"
    if unit == "years":
        return f"{value:.0f}"
    return f"{value:,.3f}"


def render(evaluation: Evaluation) -> str:
    profile = evaluation.profile
    lines = [f"{profile.name_en} / {profile.name_zh} — profile {profile.id} v{profile.version}, {evaluation.year}"]
    table = evaluation.indicators
    for summary in evaluation.summary.to_dict("records"):
        who = summary["enterprise"] + (f" / workshop {summary['workshop']}" if summary["workshop"] else "")
        found = f"{summary['threshold_not_found']} threshold(s) not found" if summary["threshold_not_found"] else ""
        months = "" if summary["months"] >= 12 else f", {summary['months']} months: provisional"
        lines.append("")
        lines.append(
            f"{who}: {summary['status'].upper()} — {summary['passed']} pass, {summary['failed']} fail,"
            f" {summary['unknown']} unknown, {summary['not_applicable']} n/a" + (f"; {found}" if found else "") + months
        )
        lines.append(f"  {'indicator':<34} {'value':>12} {'threshold':>22}  {'status':<8} gap / what closes it")
        rows = table[(table["enterprise"] == summary["enterprise"]) & (table["workshop"] == summary["workshop"])]
        for row in rows.to_dict("records"):
            comparison = {">=": "≥", "<=": "≤", "==": "=", "in": "in"}[row["comparison"]]
            shown = _show(row["threshold"], row["unit"])
            threshold = "not found" if row["threshold"] is None else f"{comparison} {shown}"
            if row["target_year"] is not None and not pd.isna(row["target_year"]):
                threshold += f" ({int(row['target_year'])})"
            what = row["action"] or ("" if row["status"] in ("pass", "n/a") else row["note"])
            if row["threshold"] is None and row["status"] != "n/a":
                what = "no published threshold found (--json gives what was searched)"
            value = _show(row["value"], row["unit"])
            lines.append(f"  {row['indicator']:<34} {value:>12} {threshold:>22}  {row['status']:<8} {what}")
    lines.append("")
    lines.append("Sources:")
    for key, doc in profile.documents.items():
        lines.append(f"  [{key}] {doc.title}, {doc.issuer.split(';')[0].strip()}, {doc.date}: {doc.found_at[0]}")
    return "\n".join(lines)


# -- the park's stored results --------------------------------------------------------------------------


def stored(args: argparse.Namespace, settings: Settings) -> int:
    """What the monthly DAG stored for ``--profile`` (its latest month of ``--year``), as a table."""
    from park.measurements import NEARZERO_EVALUATION
    from park.registry import park_timezone
    from park.store import InfluxStore
    from parkcarbon.cli.errors import require_influx
    from parkcarbon.runtime import settings_for_run_dir

    settings = settings_for_run_dir(settings, "dashboards")
    require_influx(settings)
    timezone = park_timezone(settings.registry)
    where, params = ['"profile" = $profile'], {"profile": args.profile}
    if args.enterprise:
        where.append('"enterprise" = $enterprise')
        params["enterprise"] = args.enterprise
    with InfluxStore(settings.influx) as store:
        rows = store.query(f"SELECT * FROM {NEARZERO_EVALUATION.q} WHERE {' AND '.join(where)}", params)
    if not len(rows):
        who = f" for {args.enterprise}" if args.enterprise else ""
        return _fail(
            f"no stored evaluation against {args.profile}{who}: list the profile in the registry's"
            " park.nearzero_profiles (or the enterprise's) and run the month, or give --activity"
        )
    rows["period"] = rows["time"].dt.tz_convert(timezone).dt.strftime("%Y-%m")
    year = args.year or int(rows["period"].max()[:4])
    rows = rows[rows["period"].str.startswith(f"{year:04d}-")]
    if not len(rows):
        return _fail(f"no stored evaluation against {args.profile} in {year}")
    period = rows["period"].max()
    print(render_stored(rows[rows["period"] == period], args.profile, period))
    return 0


def _stored_value(row: dict[str, Any], name: str) -> Any:
    number = _plain(row.get(name))
    return number if number is not None else _plain(row.get(f"{name}_text"))


def render_stored(rows: pd.DataFrame, profile: str, period: str) -> str:
    """The stored rows of one month as :func:`render` shows an evaluation."""
    months = int(rows["months"].max())
    state = "" if months >= 12 else f", {months} months: provisional"
    lines = [f"{profile} — {period[:4]} to {period} (stored by the monthly DAG{state})"]
    for (enterprise, workshop), group in rows.fillna({"workshop": ""}).groupby(["enterprise", "workshop"], sort=True):
        who = (enterprise or "the park") + (f" / workshop {workshop}" if workshop else "")
        counts = group["status"].value_counts()
        lines.append("")
        lines.append(
            f"{who}: {counts.get('pass', 0)} pass, {counts.get('fail', 0)} fail, {counts.get('unknown', 0)} unknown,"
            f" {counts.get('n/a', 0)} n/a"
        )
        lines.append(f"  {'indicator':<34} {'value':>12} {'threshold':>22}  {'status':<8} gap / what closes it")
        for row in group.sort_values("indicator").to_dict("records"):
            unit = str(row.get("unit") or "")
            comparison = {">=": "≥", "<=": "≤", "==": "=", "in": "in"}.get(str(row.get("comparison")), "")
            threshold = _stored_value(row, "threshold")
            shown = "not found" if threshold is None else f"{comparison} {_show(threshold, unit)}"
            what = _plain(row.get("action")) or ("" if row["status"] in ("pass", "n/a") else _plain(row.get("note")))
            value = _show(_stored_value(row, "value"), unit)
            lines.append(f"  {row['indicator']:<34} {value:>12} {shown:>22}  {row['status']:<8} {what or ''}")
    return "\n".join(lines)
