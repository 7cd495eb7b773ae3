"""Enterprise detail 企业详情, templated by enterprise: meters and activity, emissions, credits, grade
and rating history, compliance, data completeness."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, table, timeseries
from grafana_foundation_sdk.models import common as cmodels

from dashboards.common import (
    DATASOURCE,
    ENTERPRISE_LEVEL,
    MONTHLY,
    InfluxQL,
    enterprise_variable,
    new_dashboard,
    scope_emissions,
)

UID = "parkcarbon-enterprise"
ONE = 'enterprise" =~ /^$enterprise$/'  # the templated enterprise


def activity_by_carrier() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Activity by carrier 分能源活动数据 (kWh, Nm³, GJ)")
        .description("Enterprise totals from main meters; manual data (bills, certificates) included")
        .datasource(DATASOURCE)
        .with_target(
            InfluxQL(
                f'SELECT sum("quantity") FROM "activity_monthly" WHERE "{ONE} AND "workshop" = \'\' AND $timeFilter '
                "GROUP BY time(1d), \"carrier\" fill(none) tz('Asia/Shanghai')",
                alias="$tag_carrier",
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
                f'SELECT non_negative_difference(last("value")) FROM "meter_register" WHERE "{ONE} AND $timeFilter '
                'GROUP BY time($__interval), "meter" fill(none)',
                alias="$tag_meter",
            )
        )
        .height(8)
        .span(12)
    )


def emissions() -> timeseries.Panel:
    where = f'"{ONE} AND {ENTERPRISE_LEVEL}'
    return (
        timeseries.Panel()
        .title("Emissions 排放 (tCO2)")
        .datasource(DATASOURCE)
        .with_target(scope_emissions("A", "tco2_location", "scope1", "Scope 1", where))
        .with_target(scope_emissions("B", "tco2_location", "scope2", "Scope 2 location", where))
        .with_target(scope_emissions("C", "tco2_market", "scope2", "Scope 2 market", where))
        .draw_style(cmodels.GraphDrawStyle.BARS)
        .height(8)
        .span(12)
    )


def _last_credit(field: str, ref: str, alias: str) -> InfluxQL:
    return InfluxQL(f'SELECT last("{field}") FROM "credits" WHERE "{ONE} AND $timeFilter {MONTHLY}', ref, alias)


def credits_history() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Credits, grade and rating score 积分、等级与信用分 (year to date)")
        .datasource(DATASOURCE)
        .with_target(_last_credit("credits_tco2", "A", "credits"))
        .with_target(_last_credit("grade", "B", "grade"))
        .with_target(_last_credit("rating_score", "C", "rating score"))
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
                f'FROM "credits_annual" WHERE "{ONE} AND $timeFilter',
                "A",
                table=True,
            )
        )
        .with_target(
            InfluxQL(
                'SELECT "status", "due_tco2", "surrendered_tco2", "deadline", "score" '
                f'FROM "compliance" WHERE "{ONE} AND $timeFilter',
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
                f' FROM "data_quality" WHERE "{ONE} AND $timeFilter GROUP BY "meter", "register"',
                table=True,
            )
        )
        .unit("percentunit")
        .height(8)
        .span(24)
    )


def build() -> dashboard.Dashboard:
    return (
        new_dashboard(UID, "parkcarbon · Enterprise 企业详情", "One enterprise: activity, emissions, credits, quality")
        .with_variable(enterprise_variable())
        .with_panel(activity_by_carrier())
        .with_panel(meter_consumption())
        .with_panel(emissions())
        .with_panel(credits_history())
        .with_panel(rating_and_compliance())
        .with_panel(completeness())
    )
