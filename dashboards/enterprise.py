"""Enterprise detail 企业详情, templated by enterprise: meters and activity, emissions, credits, grade
and rating history, compliance, data completeness."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, table, timeseries
from grafana_foundation_sdk.models import common as cmodels
from grafana_foundation_sdk.models import dashboard as dmodels

from dashboards.common import (
    DATASOURCE,
    ENTERPRISE_LEVEL,
    InfluxQL,
    enterprise_variable,
    monthly,
    new_dashboard,
    override,
    scope_emissions,
    thresholds,
)
from park.measurements import (
    ACTIVITY_MONTHLY,
    COMPLIANCE,
    CREDITS,
    CREDITS_ANNUAL,
    DATA_QUALITY,
    METER_DAILY,
    METER_REGISTER,
)

UID = "parkcarbon-enterprise"
ONE = 'enterprise" =~ /^$enterprise$/'  # the templated enterprise


def activity_by_source(timezone: str) -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Activity by source 分能源活动数据 (kWh, Nm³, GJ)")
        .description("Enterprise totals from main meters; manual data (bills, certificates) included")
        .datasource(DATASOURCE)
        .with_target(
            InfluxQL(
                f'SELECT sum("quantity") FROM {ACTIVITY_MONTHLY.q} WHERE "{ONE} AND "workshop" = \'\' AND $timeFilter '
                f"GROUP BY time(1d), \"source\" fill(none) tz('{timezone}')",
                alias="$tag_source",
            )
        )
        .draw_style(cmodels.GraphDrawStyle.BARS)
        .unit("short")
        .height(8)
        .span(12)
    )


# Raw registers are read over the last day only: a year of 15-minute readings of a 4,000-meter
# enterprise is some 140 million points for InfluxDB to scan at every refresh, whatever the grouping;
# longer ranges read the daily rollups (meter_days).
METERS_TIME = "24h"


def meter_consumption() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title(f"Meters 计量表: consumption per interval, last {METERS_TIME} (register differences × multiplier)")
        .description(
            "Each meter's registers apart (import and export, gas, heat), in the register's unit, over the last"
            f" {METERS_TIME} whatever the dashboard's range: days, months and years are in the daily panel."
        )
        .datasource(DATASOURCE)
        .with_target(
            InfluxQL(
                f'SELECT non_negative_difference(last("value")) FROM {METER_REGISTER.q} WHERE "{ONE} AND $timeFilter '
                'GROUP BY time($__interval), "meter", "register" fill(none)',
                alias="$tag_meter $tag_register",
            )
        )
        .time_from(METERS_TIME)
        .interval("15m")
        .unit("short")
        .height(8)
        .span(12)
    )


def meter_days(timezone: str) -> timeseries.Panel:
    """Each meter register's consumption by day from the daily rollups, over the dashboard's range."""
    return (
        timeseries.Panel()
        .title("Meters by day 计量表日用量 (daily rollups, register's unit)")
        .description(
            "meter_daily: each day's consumption as the monthly step counts it (a pair of readings across"
            " midnight split by time); yesterday appears once the daily DAG has rolled it up"
        )
        .datasource(DATASOURCE)
        .with_target(
            InfluxQL(
                f'SELECT sum("quantity") FROM {METER_DAILY.q} WHERE "{ONE} AND $timeFilter '
                f'GROUP BY time($__interval), "meter", "register" fill(none) tz(\'{timezone}\')',
                alias="$tag_meter $tag_register",
            )
        )
        .interval("1d")
        .draw_style(cmodels.GraphDrawStyle.BARS)
        .unit("short")
        .height(8)
        .span(24)
    )


def emissions(timezone: str) -> timeseries.Panel:
    where = f'"{ONE} AND {ENTERPRISE_LEVEL}'
    return (
        timeseries.Panel()
        .title("Emissions 排放 (tCO2)")
        .datasource(DATASOURCE)
        .with_target(scope_emissions("A", "tco2_location", "scope1", "Scope 1", timezone, where))
        .with_target(scope_emissions("B", "tco2_location", "scope2", "Scope 2 location", timezone, where))
        .with_target(scope_emissions("C", "tco2_market", "scope2", "Scope 2 market", timezone, where))
        .draw_style(cmodels.GraphDrawStyle.BARS)
        .unit("short")
        .height(8)
        .span(12)
    )


def _last_credit(field: str, ref: str, alias: str, timezone: str) -> InfluxQL:
    return InfluxQL(
        f'SELECT last("{field}") FROM {CREDITS.q} WHERE "{ONE} AND $timeFilter {monthly(timezone)}', ref, alias
    )


def credits_history(timezone: str) -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Credits 碳积分 (tCO2, year to date: + surplus / − deficit)")
        .datasource(DATASOURCE)
        .with_target(_last_credit("credits_tco2", "A", "credits tCO2", timezone))
        .draw_style(cmodels.GraphDrawStyle.BARS)
        .unit("short")
        .thresholds(thresholds((None, "red"), (0, "green")))
        .color_scheme(dashboard.FieldColor().mode(dmodels.FieldColorModeId.THRESHOLDS))
        .height(8)
        .span(12)
    )


def grade_and_rating(timezone: str) -> timeseries.Panel:
    """Grade 1–5 on the left axis, the rating score 0–100 on the right: each on its own scale."""
    return (
        timeseries.Panel()
        .title("Grade and rating score 碳效等级与信用分 (grade 1 best … 5; score 0–100)")
        .datasource(DATASOURCE)
        .with_target(_last_credit("grade", "A", "grade 等级", timezone))
        .with_target(_last_credit("rating_score", "B", "rating score 信用分", timezone))
        .unit("none")
        .min(1)
        .max(5)
        .decimals(0)
        .axis_label("grade")
        .show_points(cmodels.VisibilityMode.ALWAYS)
        .line_interpolation(cmodels.LineInterpolation.STEP_AFTER)
        .with_override(
            *override(
                "byFrameRefID",
                "B",
                unit="none",
                min=0,
                max=100,
                decimals=0,
                custom__axisPlacement="right",
                custom__axisLabel="rating score",
            )
        )
        .height(8)
        .span(12)
    )


def rating_and_compliance() -> table.Panel:
    return (
        table.Panel()
        .title("Settled years and compliance 年度结算与履约")
        .datasource(DATASOURCE)
        .with_target(
            InfluxQL(
                'SELECT "credits_tco2", "grade", "rating", "rating_score", "factor_set", "policy_version" '
                f'FROM {CREDITS_ANNUAL.q} WHERE "{ONE} AND $timeFilter',
                "A",
                table=True,
            )
        )
        .with_target(
            InfluxQL(
                'SELECT "status", "due_tco2", "surrendered_tco2", "deadline", "score" '
                f'FROM {COMPLIANCE.q} WHERE "{ONE} AND $timeFilter',
                "B",
                table=True,
            )
        )
        .unit("none")
        .height(8)
        .span(12)
    )


def completeness() -> table.Panel:
    return (
        table.Panel()
        .title("Data completeness per meter 数据完整率 (monthly)")
        .datasource(DATASOURCE)
        .with_target(
            InfluxQL(
                'SELECT last("completeness") AS "completeness", last("estimated_intervals") AS "estimated",'
                ' last("gaps") AS "gaps", last("resets") AS "resets", last("rollovers") AS "rollovers"'
                f' FROM {DATA_QUALITY.q} WHERE "{ONE} AND $timeFilter GROUP BY "meter", "register"',
                table=True,
            )
        )
        .unit("none")
        .with_override(*override("byName", "completeness", unit="percentunit", decimals=1))
        .height(8)
        .span(24)
    )


def build(timezone: str) -> dashboard.Dashboard:
    return (
        new_dashboard(
            UID, "parkcarbon · Enterprise 企业详情", "One enterprise: activity, emissions, credits, quality", timezone
        )
        .with_variable(enterprise_variable())
        .with_panel(activity_by_source(timezone))
        .with_panel(meter_consumption())
        .with_panel(meter_days(timezone))
        .with_panel(emissions(timezone))
        .with_panel(credits_history(timezone))
        .with_panel(grade_and_rating(timezone))
        .with_panel(rating_and_compliance())
        .with_panel(completeness())
    )
