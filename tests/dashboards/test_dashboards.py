"""Dashboards as code: each builds into valid Grafana JSON, the provisioning files point at it, the
push speaks Grafana's documented HTTP API, and every panel's query, with Grafana's macros
substituted as its InfluxDB datasource does, returns data with the expected columns from a real
InfluxDB filled by the real pipeline."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import yaml
from pydantic import SecretStr

from dashboards.build import BUILDERS, all_dashboards, write_dashboards
from dashboards.common import DATASOURCE_UID
from dashboards.push import GrafanaError, push
from dashboards.render import rendered
from park.measurements import COLLECTOR_STATS, CREDITS, METER_REGISTER
from park.registry import park_timezone
from park.settings import DEMO_REGISTRY, InfluxSettings, LedgerSettings, MqttSettings, Settings
from park.store import InfluxStore
from parkcarbon.runtime import settings_for_run_dir
from parkcarbon.services import load_credentials
from pipeline.annual import settle_year
from pipeline.daily import compute_day_rollup
from pipeline.monthly import compute_activity, compute_scores
from pipeline.quality import compute_day_quality, compute_late_data
from simulators.history import write_registers
from simulators.park import simulate
from simulators.publisher import send_plan
from simulators.run import simulate_run
from tests.integration.helpers import (
    clear_retained_status,
    count_readings,
    running_collectors,
    wait_for_count,
    wait_until,
    with_own_group,
)


def stats_points(store: InfluxStore) -> int:
    frame = store.query(f'SELECT COUNT("received") FROM {COLLECTOR_STATS.q}')
    return int(frame["count"].iloc[0]) if len(frame) else 0


TIMEZONE = park_timezone(DEMO_REGISTRY)  # the park's time zone, as the demo registry states it
TZ = ZoneInfo(TIMEZONE)
FROM = datetime(2025, 1, 1, tzinfo=TZ)
TO = datetime(2026, 1, 3, tzinfo=TZ)
# Collector stats, gateway status and quarantine are stamped when received: the panels look up to now.
UNTIL = datetime.now(TZ) + timedelta(hours=1)


def targets() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    return [
        (uid, panel, target)
        for uid, model in all_dashboards(TIMEZONE).items()
        for panel in model["panels"]
        for target in panel.get("targets", [])
    ]


class TestBuild:
    def test_every_dashboard_is_valid_grafana_json(self):
        """Unique uids and panel ids, a grid position, and every target a raw InfluxQL query on our datasource."""
        boards = all_dashboards(TIMEZONE)
        assert set(boards) == set(BUILDERS) and len(boards) == 4
        for uid, model in boards.items():
            assert model["uid"] == uid and model["title"] and model["schemaVersion"] >= 39
            assert model["timezone"] == "Asia/Shanghai" and "parkcarbon" in model["tags"]
            panels = model["panels"]
            assert len({p["id"] for p in panels}) == len(panels)
            for panel in panels:
                assert panel["datasource"] == {"type": "influxdb", "uid": DATASOURCE_UID}
                assert {"h", "w", "x", "y"} <= set(panel["gridPos"]) and panel["targets"]
                refs = [t["refId"] for t in panel["targets"]]
                assert len(set(refs)) == len(refs)
                for target in panel["targets"]:
                    assert target["rawQuery"] is True and target["query"].startswith(("SELECT", "SHOW"))
                    assert "$timeFilter" in target["query"]
        variables = boards["parkcarbon-enterprise"]["templating"]["list"]
        assert [v["name"] for v in variables] == ["enterprise"]

    def test_the_park_time_zone_reaches_every_dashboard_and_query(self):
        """The time zone given (the registry's) is the dashboards' and every tz() clause's; none is built in."""
        boards = all_dashboards("Europe/Berlin")
        assert "Asia/Shanghai" not in json.dumps(boards)
        queries = [t["query"] for model in boards.values() for p in model["panels"] for t in p["targets"]]
        zones = [zone for query in queries for zone in re.findall(r"tz\('([^']*)'\)", query)]
        assert len(zones) >= 10 and set(zones) == {"Europe/Berlin"}
        assert all(model["timezone"] == "Europe/Berlin" for model in boards.values())

    def test_build_writes_dashboards_and_provisioning(self, tmp_path):
        written = write_dashboards(tmp_path, "http://influxdb:8086", "carbon", TIMEZONE, "/var/lib/grafana/dashboards")
        assert len(written) == 6
        for uid in BUILDERS:
            assert json.loads((tmp_path / "dashboards" / f"{uid}.json").read_text())["uid"] == uid
        source = yaml.safe_load((tmp_path / "provisioning" / "datasources" / "parkcarbon.yaml").read_text())
        datasource = source["datasources"][0]
        assert (datasource["uid"], datasource["type"], datasource["url"]) == (
            DATASOURCE_UID,
            "influxdb",
            "http://influxdb:8086",
        )
        assert source["datasources"][0]["jsonData"]["dbName"] == "carbon"
        provider = yaml.safe_load((tmp_path / "provisioning" / "dashboards" / "parkcarbon.yaml").read_text())
        assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


class FakeGrafana(BaseHTTPRequestHandler):
    """Answers as Grafana's HTTP API documents /api/folders and /api/dashboards/db, and checks each request."""

    folders: list[dict[str, Any]]
    boards: dict[str, dict[str, Any]]
    token = "glsa_test"

    def _reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            self._reply(401, {"message": "Unauthorized"})
            return False
        return True

    def do_GET(self) -> None:
        if self._authorized() and self.path == "/api/folders":
            self._reply(200, [{"id": i + 1, "uid": f["uid"], "title": f["title"]} for i, f in enumerate(self.folders)])

    def do_POST(self) -> None:
        if not self._authorized():
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/api/folders":
            folder = {"uid": f"f{len(self.folders) + 1}", "title": body["title"]}
            self.folders.append(folder)
            self._reply(200, folder | {"id": len(self.folders)})
        elif self.path == "/api/dashboards/db":
            model = body["dashboard"]
            assert body["folderUid"] in {f["uid"] for f in self.folders} and model["id"] is None and model["uid"]
            existing = self.boards.get(model["uid"])
            if existing is not None and not body["overwrite"]:
                self._reply(
                    412, {"message": "The dashboard has been changed by someone else", "status": "version-mismatch"}
                )
                return
            version = 1 if existing is None else existing["version"] + 1
            self.boards[model["uid"]] = {"model": model, "version": version, "folder": body["folderUid"]}
            slug = re.sub(r"[^a-z0-9]+", "-", model["title"].lower()).strip("-")
            self._reply(200, {"id": 1, "uid": model["uid"], "url": f"/d/{model['uid']}/{slug}", "status": "success",
                              "version": version, "slug": slug})  # fmt: skip
        else:
            self._reply(404, {"message": "Not found"})

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def grafana() -> Iterator[tuple[str, type[FakeGrafana]]]:
    handler = type("Handler", (FakeGrafana,), {"folders": [], "boards": {}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_push_creates_the_folder_once_and_updates_dashboards(grafana):
    url, state = grafana
    first = push(url, "glsa_test", TIMEZONE)
    assert [p.version for p in first] == [1, 1, 1, 1] and len(state.folders) == 1
    second = push(url, "glsa_test", TIMEZONE)
    assert [p.version for p in second] == [2, 2, 2, 2] and len(state.folders) == 1
    assert state.boards["parkcarbon-park"]["model"]["title"].startswith("parkcarbon")
    with pytest.raises(GrafanaError, match="412"):
        push(url, "glsa_test", TIMEZONE, overwrite=False)
    with pytest.raises(GrafanaError, match="401"):
        push(url, "wrong token", TIMEZONE)


# -- every panel's query on real data ------------------------------------------------------------


def substitute(panel: dict[str, Any], query: str, variables: dict[str, str]) -> str:
    """What Grafana's InfluxDB datasource sends for ``query`` over FROM–UNTIL, at a one-hour interval
    (the fixture's readings are from January, so a panel's own shorter range is not applied)."""
    return rendered(panel, query, FROM, UNTIL, variables, panel_time=False, interval="1h")


def expected_columns(query: str) -> set[str]:
    """Column names the outer SELECT gives: an alias, else the function's or field's name, plus GROUP BY tags."""
    depth, start, end = 0, len("SELECT "), None
    for i, char in enumerate(query):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and query.startswith(" FROM ", i):
            end = i
            break
    assert end is not None
    columns, depth, item = set(), 0, ""
    for char in query[start:end] + ",":
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            alias = re.search(r'AS "([^"]+)"\s*$', item)
            function = re.match(r"\s*([a-z_]+)\(", item)
            columns.add(alias.group(1) if alias else function.group(1) if function else item.strip().strip('"'))
            item = ""
        else:
            item += char
    outer = query[query.rfind(")") if query.count("(SELECT") else 0 :]
    group = re.search(r"GROUP BY (.*?)(?: fill\(| tz\(|$)", outer)
    if group:
        columns |= set(re.findall(r'"([a-z_]+)"', group.group(1)))
    return columns


@pytest.fixture(scope="module")
def filled(local_services, ports, run_dir, demo_registry, tmp_path_factory) -> Iterator[Settings]:
    """A year (2025) of the demo park computed month by month and settled, two days through MQTT with
    malformed and spoofed messages, a day's quality, and a late reading: every measurement a panel reads."""
    local_services.create_database("dashboards")  # by the admin, with each role's privilege
    own = Settings(
        run_dir=run_dir,
        mqtt=MqttSettings(port=ports.mqtt),
        influx=InfluxSettings(port=ports.influx_http, rpc_port=ports.influx_rpc, database="dashboards"),
        ledger=LedgerSettings(url=SecretStr(f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'ledger.sqlite'}")),
    )
    # The pipeline's InfluxDB account (it computes the months), the collector replicas' broker passwords.
    settings = with_own_group(settings_for_run_dir(own, role="pipeline"))
    with InfluxStore(settings.influx) as store:
        year = simulate(demo_registry, FROM, datetime(2026, 1, 1, tzinfo=TZ), pd.Timedelta("1D"), 3)
        write_registers(store, demo_registry, year.registers)
        for month in range(1, 13):
            compute_activity(settings, f"2025-{month:02d}")
            compute_scores(settings, f"2025-{month:02d}")
        settle_year(settings, 2025)
        for day in ("2025-12-29", "2025-12-30", "2025-12-31"):  # the daily rollups the meters-by-day panel reads
            compute_day_rollup(settings, day)

        run = simulate_run(
            demo_registry,
            datetime(2026, 1, 1, 6, tzinfo=TZ),
            TO,
            pd.Timedelta("15min"),
            5,
            {"malformed": 3, "spoof": 1},
        )
        before = count_readings(store)
        distinct = int(run.published.notna().to_numpy().sum())
        with running_collectors(settings, demo_registry):
            assert send_plan(demo_registry, run.plan, settings.mqtt, load_credentials(settings.run_dir)).refused == 0
            assert wait_for_count(store, before + distinct) == before + distinct
            assert wait_until(lambda: stats_points(store) >= 3, 20.0)  # the throughput panel needs two or more
        clear_retained_status(settings, demo_registry)
        compute_day_quality(settings, "2026-01-01")

        column = year.registers.columns[0]
        meter = demo_registry.meter_by_id[column[0]]
        tags = {
            "enterprise": meter.enterprise,
            "meter": meter.id,
            "carrier": meter.carrier.value,
            "register": column[1],
        }
        june = pd.Timestamp("2025-06-10 12:00", tz=TZ)
        store.write([METER_REGISTER.point(tags, {"raw_value": 1.0, "value": 1.0}, june.value)])  # stored late
        assert compute_late_data(settings, date(2026, 1, 2)) == {"2025-06": 1}
        # The collectors above reported for seconds only; a replica that ran for hours, as they do, gives
        # the throughput panel two of its (here hourly) intervals.
        store.write(
            COLLECTOR_STATS.point({"replica": "collector-9"}, {"readings_written": float(n * 36_000)}, at.value)
            for n, at in enumerate(pd.date_range("2026-01-02 08:00", periods=3, freq="h", tz=TZ))
        )
        yield settings
    local_services.drop_database("dashboards")


# Each query's time on the test data, printed at the end of the module (pytest -s shows it).
QUERY_BUDGET_S = 2.0
QUERY_TIMES: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def print_query_times() -> Iterator[None]:
    yield
    if QUERY_TIMES:
        lines = [f"{seconds * 1000:8.1f} ms  {name}" for name, seconds in QUERY_TIMES.items()]
        print(
            "\npanel query times on the test data (a year of daily registers, two days of 15-min):\n" + "\n".join(lines)
        )


@pytest.mark.services
@pytest.mark.parametrize(
    ("uid", "panel", "target"),
    targets(),
    ids=lambda v: v if isinstance(v, str) else str(v.get("title", v.get("refId", "")))[:40],
)
def test_panel_query_returns_data(filled, uid, panel, target):
    """The panel's query, as Grafana would send it from 2025-01-01 until now, for enterprise E01, within
    the time budget."""
    with InfluxStore(filled.influx) as store:
        choices = store.query(f'SHOW TAG VALUES FROM {CREDITS.q} WITH KEY = "enterprise"')
        assert "E01" in set(choices["value"])  # the enterprise variable's own query offers E01
        started = time.perf_counter()
        frame = store.query(substitute(panel, target["query"], {"enterprise": "E01"}))
        elapsed = time.perf_counter() - started
    QUERY_TIMES[f"{uid} · {panel['title']} · {target['refId']}"] = elapsed
    assert elapsed < QUERY_BUDGET_S, (panel["title"], elapsed)
    assert len(frame) > 0, (uid, panel["title"], target["query"])
    expected = expected_columns(target["query"]) | {"time"}
    assert expected <= set(frame.columns), (panel["title"], expected - set(frame.columns))
