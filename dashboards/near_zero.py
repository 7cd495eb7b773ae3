"""Near-zero-carbon workshops and factories 近零碳车间/工厂: the offset ratio against the 0.80 (near-zero)
and 1.00 (zero-carbon) lines, the trajectory the target requires, on-track or off-track."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common, dashboard, table, timeseries
from grafana_foundation_sdk.models import common as cmodels

from dashboards.common import DATASOURCE, InfluxQL, new_dashboard, override, thresholds
from park.measurements import NEAR_ZERO_PROGRESS, NEARZERO_EVALUATION

UID = "parkcarbon-near-zero"


def offset_ratio(timezone: str) -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Offset ratio 抵消率 (green certificates + self-consumed PV + offsets) / (Scope 1 + Scope 2)")
        .description("near-zero-carbon at 0.80, zero-carbon at 1.00 (docs: Suzhou and SIP criteria)")
        .datasource(DATASOURCE)
        .with_target(
            InfluxQL(
                f'SELECT last("offset_ratio") FROM {NEAR_ZERO_PROGRESS.q} WHERE $timeFilter '
                f"GROUP BY time(1d), \"workshop\" fill(none) tz('{timezone}')",
                "A",
                "$tag_workshop",
            )
        )
        .thresholds(thresholds((None, "transparent"), (0.8, "orange"), (1.0, "green")))
        .thresholds_style(common.GraphThresholdsStyleConfig().mode(cmodels.GraphThresholdsStyleMode.LINE))
        .unit("percentunit")
        .height(10)
        .span(24)
    )


def trajectory(timezone: str) -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Trajectory to target 目标路径: required ratio by now vs achieved")
        .datasource(DATASOURCE)
        .with_target(
            InfluxQL(
                f'SELECT last("required_ratio") FROM {NEAR_ZERO_PROGRESS.q} WHERE $timeFilter '
                f"GROUP BY time(1d), \"workshop\" fill(none) tz('{timezone}')",
                "A",
                "required $tag_workshop",
            )
        )
        .with_target(
            InfluxQL(
                f'SELECT last("target") FROM {NEAR_ZERO_PROGRESS.q} WHERE $timeFilter '
                f"GROUP BY time(1d), \"workshop\" fill(none) tz('{timezone}')",
                "B",
                "target $tag_workshop",
            )
        )
        .line_style(common.LineStyle().fill("dash").dash([10.0, 10.0]))
        .unit("percentunit")
        .height(9)
        .span(12)
    )


def status_table() -> table.Panel:
    return (
        table.Panel()
        .title("On track? 是否按期达标")
        .datasource(DATASOURCE)
        .with_target(
            InfluxQL(
                'SELECT last("offset_ratio") AS "offset ratio", last("required_ratio") AS "required",'
                ' last("target") AS "target", last("on_track") AS "on track", last("status") AS "status"'
                f' FROM {NEAR_ZERO_PROGRESS.q} WHERE $timeFilter GROUP BY "enterprise", "workshop"',
                table=True,
            )
        )
        .unit("none")
        .with_override(*override("byName", "offset ratio", unit="percentunit", decimals=1))
        .with_override(*override("byName", "required", unit="percentunit", decimals=1))
        .with_override(*override("byName", "target", unit="percentunit", decimals=0))
        .height(9)
        .span(12)
    )


def standards_table() -> table.Panel:
    """The latest month's evaluation against the registry's profiles: one row per subject and indicator."""
    return (
        table.Panel()
        .title("Against the standards 对标近零碳标准 (year to date, latest month)")
        .description(
            "Each indicator of the profiles the registry selects (Suzhou 2023, SIP 2026, Hunan, Jiangsu park):"
            " value, threshold, result and what closes the gap; a fact no meter gives is unknown until reviewed"
        )
        .datasource(DATASOURCE)
        .with_target(
            InfluxQL(
                'SELECT last("value") AS "value", last("value_text") AS "value (fact)", last("unit") AS "unit",'
                ' last("threshold") AS "threshold", last("status") AS "result", last("gap_tco2") AS "gap tCO2",'
                f' last("action") AS "what closes it" FROM {NEARZERO_EVALUATION.q} WHERE $timeFilter'
                ' GROUP BY "profile", "enterprise", "workshop", "indicator"',
                table=True,
            )
        )
        .unit("none")
        .with_override(*override("byName", "gap tCO2", unit="none", decimals=1))
        .height(12)
        .span(24)
    )


def build(timezone: str) -> dashboard.Dashboard:
    return (
        new_dashboard(
            UID, "parkcarbon · Near-zero-carbon 近零碳车间", "Workshops and factories toward their targets", timezone
        )
        .with_panel(offset_ratio(timezone))
        .with_panel(trajectory(timezone))
        .with_panel(status_table())
        .with_panel(standards_table())
    )
