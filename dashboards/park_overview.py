"""Park overview 园区总览: emissions by month (Scope 1, Scope 2 location- and market-based), the
credits leaderboard, grades, green-power share, and carbon intensity against the benchmark."""

from __future__ import annotations

from grafana_foundation_sdk.builders import barchart, dashboard, table, timeseries
from grafana_foundation_sdk.models import common as cmodels
from grafana_foundation_sdk.models import dashboard as dmodels

from dashboards.common import (
    DATASOURCE,
    ENTERPRISE_LEVEL,
    InfluxQL,
    monthly,
    new_dashboard,
    override,
    scope_emissions,
    thresholds,
)
from park.measurements import ACTIVITY_MONTHLY, CREDITS

UID = "parkcarbon-park"


def emissions_by_month(timezone: str) -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Emissions by month 月度排放 (tCO2)")
        .description(
            "GB/T 32150: Scope 1 combustion, Scope 2 purchased electricity and heat, location- and market-based"
        )
        .datasource(DATASOURCE)
        .with_target(scope_emissions("A", "tco2_location", "scope1", "Scope 1 范围一", timezone))
        .with_target(scope_emissions("B", "tco2_location", "scope2", "Scope 2 location 范围二(位置法)", timezone))
        .with_target(scope_emissions("C", "tco2_market", "scope2", "Scope 2 market 范围二(市场法)", timezone))
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
                f'SELECT last("credits_tco2") AS "credits_tco2" FROM {CREDITS.q} '
                'WHERE $timeFilter GROUP BY "enterprise"',
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
                f'SELECT last("grade") AS "grade" FROM {CREDITS.q} WHERE $timeFilter GROUP BY "enterprise"', table=True
            )
        )
        .with_transformation(count_per_grade)
        .x_field("grade")
        .unit("none")
        .height(10)
        .span(6)
    )


def green_power_share(timezone: str) -> timeseries.Panel:
    green = (
        f'SELECT sum("quantity") FROM {ACTIVITY_MONTHLY.q} WHERE {ENTERPRISE_LEVEL} AND '
        "(\"source\" = 'green_electricity_certified' OR \"source\" = 'pv_self_consumed') AND $timeFilter "
        f"{monthly(timezone)}"
    )
    used = (
        f'SELECT sum("quantity") FROM {ACTIVITY_MONTHLY.q} WHERE {ENTERPRISE_LEVEL} AND '
        "(\"source\" = 'grid_electricity' OR \"source\" = 'pv_self_consumed') AND $timeFilter "
        f"{monthly(timezone)}"
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
                f' last("months_covered") AS "months" FROM {CREDITS.q} WHERE $timeFilter'
                ' GROUP BY "enterprise", "industry"',
                table=True,
            )
        )
        .decimals(3)
        .unit("none")
        .with_override(*override("byName", "grade", decimals=0))
        .with_override(*override("byName", "months", decimals=0))
        .height(10)
        .span(24)
    )


def build(timezone: str) -> dashboard.Dashboard:
    return (
        new_dashboard(
            UID,
            "parkcarbon · Park overview 园区总览",
            "Emissions, credits, grades and green power of the park",
            timezone,
        )
        .with_panel(emissions_by_month(timezone))
        .with_panel(credits_leaderboard())
        .with_panel(grade_distribution())
        .with_panel(green_power_share(timezone))
        .with_panel(intensity_vs_benchmark())
    )
