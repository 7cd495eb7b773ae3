"""Enterprise detail 企业详情, templated by enterprise: meters and activity, emissions, credits, grade
and rating history, compliance, data completeness."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, table, timeseries
from grafana_foundation_sdk.models import common as cmodels

from dashboards.common import (
    DATASOURCE,
    ENTERPRISE_LEVEL,
    InfluxQL,
    enterprise_variable,
    monthly,
    new_dashboard,
    scope_emissions,
)
from park.measurements import (
    ACTIVITY_MONTHLY,
    COMPLIANCE,
    CREDITS,
    CREDITS_ANNUAL,
    DATA_QUALITY,
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
        .height(8)
        .span(12)
    )


def meter_consumption() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Meters 计量表: consumption per interval (register differences × multiplier)")
        .datasource(DATASOURCE)
        .with_target(
            InfluxQL(
                f'SELECT non_negative_difference(last("value")) FROM {METER_REGISTER.q} WHERE "{ONE} AND $timeFilter '
                'GROUP BY time($__interval), "meter" fill(none)',
                alias="$tag_meter",
            )
        )
        .height(8)
        .span(12)
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
        .title("Credits, grade and rating score 积分、等级与信用分 (year to date)")
        .datasource(DATASOURCE)
        .with_target(_last_credit("credits_tco2", "A", "credits tCO2", timezone))
        .with_target(_last_credit("grade", "B", "grade", timezone))
        .with_target(_last_credit("rating_score", "C", "rating score", timezone))
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
        .unit("percentunit")
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
        .with_panel(emissions(timezone))
        .with_panel(credits_history(timezone))
        .with_panel(rating_and_compliance())
        .with_panel(completeness())
    )
