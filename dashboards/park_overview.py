"""Park overview 园区总览: emissions by month (Scope 1, Scope 2 location- and market-based), the
credits leaderboard, grades, green-power share, and carbon intensity against the benchmark."""

from __future__ import annotations

from grafana_foundation_sdk.builders import barchart, dashboard, table, timeseries
from grafana_foundation_sdk.models import common as cmodels
from grafana_foundation_sdk.models import dashboard as dmodels

from dashboards.common import (
    DATASOURCE,
    ENTERPRISE_LEVEL,
    MONTHLY,
    InfluxQL,
    new_dashboard,
    scope_emissions,
    thresholds,
)

UID = "parkcarbon-park"


def emissions_by_month() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Emissions by month 月度排放 (tCO2)")
        .description(
            "GB/T 32150: Scope 1 combustion, Scope 2 purchased electricity and heat, location- and market-based"
        )
        .datasource(DATASOURCE)
        .with_target(scope_emissions("A", "tco2_location", "scope1", "Scope 1 范围一"))
        .with_target(scope_emissions("B", "tco2_location", "scope2", "Scope 2 location 范围二(位置法)"))
        .with_target(scope_emissions("C", "tco2_market", "scope2", "Scope 2 market 范围二(市场法)"))
        .unit("short")
        .draw_style(cmodels.GraphDrawStyle.BARS)
        .fill_opacity(60)
        .height(9)
        .span(24)
    )


def credits_leaderboard() -> barchart.Panel:
    return (
        barchart.Panel()
        .title("Credits, year to date 碳积分 (tCO2, + surplus / − deficit)")
        .datasource(DATASOURCE)
        .with_target(
            InfluxQL(
                'SELECT last("credits_tco2") AS "credits" FROM "credits" WHERE $timeFilter GROUP BY "enterprise"',
                table=True,
            )
        )
        .x_field("enterprise")
        .orientation(cmodels.VizOrientation.HORIZONTAL)
        .unit("short")
        .thresholds(thresholds((None, "red"), (0, "green")))
        .color_scheme(dashboard.FieldColor().mode(dmodels.FieldColorModeId.THRESHOLDS))
        .height(10)
        .span(12)
    )


def grade_distribution() -> barchart.Panel:
    # InfluxQL cannot group by a field: Grafana counts the enterprises per grade (groupBy transformation).
    count_per_grade = dmodels.DataTransformerConfig(
        id_val="groupBy",
        options={
            "fields": {
                "grade": {"aggregations": [], "operation": "groupby"},
                "enterprise": {"aggregations": ["count"], "operation": "aggregate"},
            }
        },
    )
    return (
        barchart.Panel()
        .title("Enterprises per grade 碳效等级分布 (latest month)")
        .description("Grade 1–5 from K = intensity / industry mean (Zhejiang carbon-efficiency method)")
        .datasource(DATASOURCE)
        .with_target(
            InfluxQL(
                'SELECT last("grade") AS "grade" FROM "credits" WHERE $timeFilter GROUP BY "enterprise"', table=True
            )
        )
        .with_transformation(count_per_grade)
        .x_field("grade")
        .unit("none")
        .height(10)
        .span(6)
    )


def green_power_share() -> timeseries.Panel:
    green = (
        f'SELECT sum("quantity") FROM "activity_monthly" WHERE {ENTERPRISE_LEVEL} AND '
        "(\"carrier\" = 'green_electricity_certified' OR \"carrier\" = 'pv_self_consumed') AND $timeFilter "
        f"{MONTHLY}"
    )
    used = (
        f'SELECT sum("quantity") FROM "activity_monthly" WHERE {ENTERPRISE_LEVEL} AND '
        "(\"carrier\" = 'grid_electricity' OR \"carrier\" = 'pv_self_consumed') AND $timeFilter "
        f"{MONTHLY}"
    )
    return (
        timeseries.Panel()
        .title("Green power 绿电 (kWh): certified + self-consumed PV vs electricity used")
        .datasource(DATASOURCE)
        .with_target(InfluxQL(green, "A", "green 绿电"))
        .with_target(InfluxQL(used, "B", "used 用电"))
        .unit("kwatth")
        .height(10)
        .span(6)
    )


def intensity_vs_benchmark() -> table.Panel:
    return (
        table.Panel()
        .title("Carbon intensity vs benchmark 碳排放强度与基准 (tCO2 / 10⁴ CNY value added)")
        .datasource(DATASOURCE)
        .with_target(
            InfluxQL(
                'SELECT last("intensity_t_per_10k_cny") AS "intensity", last("benchmark_t_per_10k_cny") AS "benchmark",'
                ' last("k_ratio") AS "K", last("grade") AS "grade", last("rating") AS "rating",'
                ' last("months_covered") AS "months" FROM "credits" WHERE $timeFilter'
                ' GROUP BY "enterprise", "industry"',
                table=True,
            )
        )
        .decimals(3)
        .height(10)
        .span(24)
    )


def build() -> dashboard.Dashboard:
    return (
        new_dashboard(
            UID, "parkcarbon · Park overview 园区总览", "Emissions, credits, grades and green power of the park"
        )
        .with_panel(emissions_by_month())
        .with_panel(credits_leaderboard())
        .with_panel(grade_distribution())
        .with_panel(green_power_share())
        .with_panel(intensity_vs_benchmark())
    )
