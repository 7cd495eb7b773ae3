"""What every dashboard shares: the InfluxDB datasource, raw InfluxQL targets, panel defaults.

The SDK has no InfluxDB query builder, so a target is the InfluxDB plugin's own JSON (``rawQuery``
with the InfluxQL text) wrapped in the SDK's generic dataquery.
"""

from __future__ import annotations

from dataclasses import dataclass

from grafana_foundation_sdk.builders import common
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard as dmodels

from park.measurements import CREDITS, EMISSIONS_MONTHLY

DATASOURCE_UID = "parkcarbon-influxdb"
DATASOURCE = dmodels.DataSourceRef(type_val="influxdb", uid=DATASOURCE_UID)
TAGS = ["parkcarbon"]

ENTERPRISE_LEVEL = "\"workshop\" = ''"  # enterprise totals; workshop rows are parts of them


def monthly(timezone: str) -> str:
    """Monthly results are stamped at local midnight of the month's first day (in the park's
    ``timezone``): one point per month."""
    return f"GROUP BY time(1d) fill(none) tz('{timezone}')"


@dataclass(frozen=True)
class InfluxQL(cogbuilder.Builder[cogvariants.Dataquery]):
    """A raw InfluxQL target; ``table`` for the table result format."""

    query: str
    ref_id: str = "A"
    alias: str = ""
    table: bool = False

    def build(self) -> cogvariants.Dataquery:
        data: dict[str, object] = {
            "refId": self.ref_id,
            "datasource": {"type": "influxdb", "uid": DATASOURCE_UID},
            "rawQuery": True,
            "query": self.query,
            "resultFormat": "table" if self.table else "time_series",
        }
        if self.alias:
            data["alias"] = self.alias
        return cogruntime.UnknownDataquery(data)


def scope_emissions(
    ref: str, field: str, scope: str, alias: str, timezone: str, where: str = ENTERPRISE_LEVEL
) -> InfluxQL:
    """Monthly tCO2 of one scope (``field``: tco2_location or tco2_market); enterprise totals by default."""
    return InfluxQL(
        f'SELECT sum("{field}") FROM {EMISSIONS_MONTHLY.q} WHERE {where} AND "scope" = \'{scope}\' '
        f"AND $timeFilter {monthly(timezone)}",
        ref,
        alias,
    )


def enterprise_variable() -> dash.QueryVariable:
    return (
        dash.QueryVariable("enterprise")
        .label("Enterprise 企业")
        .datasource(DATASOURCE)
        .query(f'SHOW TAG VALUES FROM {CREDITS.q} WITH KEY = "enterprise"')
        .refresh(dmodels.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(dmodels.VariableSort.ALPHABETICAL_ASC)
    )


def thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(dmodels.ThresholdsMode.ABSOLUTE)
        .steps([dmodels.Threshold(value=v, color=c) for v, c in steps])
    )


def override(
    matcher: str, options: str, **properties: object
) -> tuple[dmodels.MatcherConfig, list[dmodels.DynamicConfigValue]]:
    """A field override for ``panel.with_override(*override(...))``: ``matcher`` is ``byFrameRefID`` (a
    target's series, by its refId) or ``byName`` (a table column); property names as Grafana spells them,
    with ``__`` for a dot (``custom__axisPlacement``)."""
    return (
        dmodels.MatcherConfig(id_val=matcher, options=options),
        [dmodels.DynamicConfigValue(id_val=name.replace("__", "."), value=value) for name, value in properties.items()],
    )


def reduce_last() -> common.ReduceDataOptions:
    return common.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def new_dashboard(uid: str, title: str, description: str, timezone: str) -> dash.Dashboard:
    return (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .timezone(timezone)
        .time("now-1y", "now")
        .refresh("5m")
        .editable()
    )
