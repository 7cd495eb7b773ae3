"""Data quality and ingestion health 数据质量与采集: gateways online, completeness, quarantine by
reason, late data, collector throughput, spool depth and lag."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, stat, table, timeseries

from dashboards.common import DATASOURCE, InfluxQL, new_dashboard, override, reduce_last, thresholds
from park.measurements import (
    COLLECTOR_STATS,
    GATEWAY_QUALITY_DAILY,
    GATEWAY_STATUS,
    LATE_DATA,
    QUARANTINE,
)
from park.settings import QualitySettings

UID = "parkcarbon-quality"


def gateways_online() -> stat.Panel:
    return (
        stat.Panel()
        .title("Gateways online 在线网关 (last announced status)")
        .datasource(DATASOURCE)
        .with_target(
            InfluxQL(
                # each gateway's last status per interval (few: status changes only), then its last one
                'SELECT sum("online") FROM (SELECT last("online") AS "online" FROM (SELECT last("online") AS "online" '
                f'FROM {GATEWAY_STATUS.q} WHERE $timeFilter GROUP BY time($__interval), "gateway" fill(none)) '
                'GROUP BY "gateway")',
                alias="online",
            )
        )
        .unit("none")
        .reduce_options(reduce_last())
        .height(6)
        .span(6)
    )


def completeness_daily(timezone: str) -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Completeness per day 每日数据完整率 (mean over meter registers)")
        .datasource(DATASOURCE)
        .with_target(
            InfluxQL(
                # one point per gateway and day (Σ and count of its registers' completeness), not one
                # per register: a year of 50,000 meters is 18 M register-days
                f'SELECT sum("completeness_sum") / sum("registers") AS "completeness" FROM {GATEWAY_QUALITY_DAILY.q}'
                f" WHERE $timeFilter GROUP BY time(1d) fill(none) tz('{timezone}')",
                alias="completeness",
            )
        )
        .with_target(
            InfluxQL(
                f'SELECT sum("meters_silent") FROM {GATEWAY_QUALITY_DAILY.q} WHERE $timeFilter '
                f"GROUP BY time(1d) fill(none) tz('{timezone}')",
                "B",
                "meters silent all day",
            )
        )
        .unit("percentunit")
        .with_override(*override("byFrameRefID", "B", unit="none", decimals=0, min=0, custom__axisPlacement="right"))
        .thresholds(thresholds((None, "red"), (0.95, "green")))
        .height(6)
        .span(18)
    )


def quarantine_by_reason() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Quarantined messages by reason 隔离消息 (never silently dropped)")
        .datasource(DATASOURCE)
        .with_target(
            InfluxQL(
                f'SELECT count("payload_bytes") FROM {QUARANTINE.q} WHERE $timeFilter '
                'GROUP BY time($__interval), "reason" fill(none)',
                alias="$tag_reason",
            )
        )
        .unit("none")
        .height(8)
        .span(12)
    )


# Late data is stamped at the start of the month it belongs to, and looked for that many months back:
# the panel shows those months whatever the dashboard's range (7 days by default).
LATE_DATA_TIME = f"{QualitySettings().late_data_months + 1}M"


def late_readings(timezone: str) -> table.Panel:
    return (
        table.Panel()
        .title("Late data 迟到数据: readings stored after their month ran (re-run the month)")
        .description(
            f"Points are dated at the start of their month; the panel looks back {LATE_DATA_TIME} whatever the"
            " dashboard's range."
        )
        .datasource(DATASOURCE)
        .with_target(
            InfluxQL(
                f'SELECT sum("late_readings") AS "late readings" FROM {LATE_DATA.q} WHERE $timeFilter '
                f"GROUP BY time(1d), \"enterprise\" fill(none) tz('{timezone}')",
                table=True,
            )
        )
        .time_from(LATE_DATA_TIME)
        .unit("none")
        .height(8)
        .span(12)
    )


def collector_throughput() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Collector throughput 采集吞吐 (readings written per second, between stats reports)")
        .datasource(DATASOURCE)
        .with_target(
            InfluxQL(
                f'SELECT non_negative_derivative(max("readings_written"), 1s) AS "readings/s" '
                f'FROM {COLLECTOR_STATS.q} WHERE $timeFilter GROUP BY time($__interval), "replica" fill(none)',
                alias="$tag_replica",
            )
        )
        .unit("ops")
        .interval("10s")  # the collectors report every 10 s
        .height(8)
        .span(12)
    )


def spool_and_lag() -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title("Spool depth and lag 本地缓存与延迟")
        .datasource(DATASOURCE)
        .with_target(
            InfluxQL(
                f'SELECT max("spool_depth_bytes") FROM {COLLECTOR_STATS.q} WHERE $timeFilter '
                'GROUP BY time($__interval), "replica" fill(none)',
                "A",
                "spool $tag_replica",
            )
        )
        .with_target(
            InfluxQL(
                f'SELECT max("lag_s") FROM {COLLECTOR_STATS.q} WHERE $timeFilter '
                'GROUP BY time($__interval), "replica" fill(none)',
                "B",
                "lag s $tag_replica",
            )
        )
        .unit("bytes")
        .with_override(*override("byFrameRefID", "B", unit="s", custom__axisPlacement="right"))
        .interval("10s")
        .height(8)
        .span(12)
    )


def build(timezone: str) -> dashboard.Dashboard:
    return (
        new_dashboard(
            UID, "parkcarbon · Data quality 数据质量", "Gateways, completeness, quarantine, collectors", timezone
        )
        .time("now-7d", "now")
        .refresh("1m")
        .with_panel(gateways_online())
        .with_panel(completeness_daily(timezone))
        .with_panel(quarantine_by_reason())
        .with_panel(late_readings(timezone))
        .with_panel(collector_throughput())
        .with_panel(spool_and_lag())
    )
