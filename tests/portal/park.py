"""A small park for the platform's tests: three enterprises whose every figure and name is told apart
at a glance. BRAVO is the "other enterprise" of the isolation tests: each of its names, ids, user
names, references and figures contains ``bravo`` (any case) or one of :data:`BRAVO_FIGURES`, so a
response that shows anything of BRAVO's is caught by looking for those."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from ledger.book import Ledger, SettledCredit
from ledger.db import make_engine, migrate
from ledger.results import ResultRow, record_version
from park.measurements import (
    CREDITS,
    DATA_QUALITY,
    EMISSIONS_BY_SOURCE,
    EMISSIONS_MONTHLY,
    GATEWAY_QUALITY_DAILY,
    MONTH_COVERAGE,
    NEAR_ZERO_PROGRESS,
    NEARZERO_EVALUATION,
)
from park.month import Month
from park.registry import load_registry
from park.settings import Settings
from park.store import InfluxStore
from parkcarbon.cli.platform import read_only_settings
from portal import auth, offers, publication, workflow
from portal.app import create_app
from portal.audit import Actor
from portal.config import PlatformConfig, PlatformSettings

REGISTRY = """\
version: test-1
park:
  id: test-park
  name: Test Park
  metering_start: 2026-01-01
  latitude_deg: 31.8
  longitude_deg: 117.1
  targets:
  - {year: 2026, emissions_cap_tco2: 1000000, source: the test park's own choice}
enterprises:
- {id: ALPHA, name: Alpha Optics, industry: C39}
- {id: BRAVO, name: Bravo Hidden Steel, industry: C39}
- {id: CHARLIE, name: Charlie Pumps, industry: C34}
workshops:
- {id: ALPHA-WS-1, enterprise: ALPHA, name: Alpha lens shop}
- {id: BRAVO-WS-1, enterprise: BRAVO, name: Bravo furnace}
gateways:
- {id: gw-alpha, enterprise: ALPHA}
- {id: gw-bravo, enterprise: BRAVO}
- {id: gw-charlie, enterprise: CHARLIE}
meters:
- {id: ALPHA-M, gateway: gw-alpha, enterprise: ALPHA, carrier: grid_electricity, role: main, unit: kWh}
- {id: BRAVO-M, gateway: gw-bravo, enterprise: BRAVO, carrier: grid_electricity, role: main, unit: kWh}
- {id: CHARLIE-M, gateway: gw-charlie, enterprise: CHARLIE, carrier: grid_electricity, role: main, unit: kWh}
"""

PERIODS = ("2026-02", "2026-03")
# Per enterprise and month: (credits YTD, grade, rating, month tCO2 total); BRAVO's figures are unlike any other.
FIGURES = {
    "ALPHA": {"2026-02": (61.25, 2, "B", 410.5), "2026-03": (123.45, 2, "B", 432.25)},
    "BRAVO": {"2026-02": (-48_765.4, 5, "E", 97_531.5), "2026-03": (-98_765.4, 5, "E", 96_420.5)},
    "CHARLIE": {"2026-02": (7.5, 3, "C", 55.5), "2026-03": (15.75, 3, "C", 56.75)},
}
BRAVO_FIGURES = (
    *("48,765", "98,765", "97,531", "96,420", "48765", "98765", "97531", "96420", "4321.9"),
    *("72,315", "72315", "136,289", "136289"),  # its March grid line: 96,420.5 × 0.75 t, / 0.5306 MWh
)
GRID_T_PER_MWH = 0.5306
GAS_T_PER_10K_NM3 = 21.62
ROLES_USERS = {
    "olga-admin": ("park_admin", None),
    "ana-analyst": ("park_analyst", None),
    "vic-viewer": ("park_viewer", None),
    "aud-auditor": ("auditor", None),
    "alpha-admin": ("enterprise_admin", "ALPHA"),
    "alpha-reporter": ("enterprise_reporter", "ALPHA"),
    "bravo-admin": ("enterprise_admin", "BRAVO"),
    "bravo-reporter": ("enterprise_reporter", "BRAVO"),
}


# Data requests seeded in this order, so their ids are known: BRAVO's gas bill (with a version awaiting
# review and its evidence), ALPHA's diesel bill (the same) and ALPHA's value added, overdue.
BRAVO_REQUEST, ALPHA_REQUEST, ALPHA_OVERDUE_REQUEST = 1, 2, 3
BRAVO_EVIDENCE, ALPHA_EVIDENCE = 1, 2
PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


# Offers seeded in this order: BRAVO offers CHARLIE credits (ALPHA is no party to it), CHARLIE offers ALPHA some.
BRAVO_OFFER, ALPHA_OFFER = 1, 2


def seed_offers(url: str) -> None:
    """The offers above, open for a week, through the platform's offers."""
    engine = make_engine(url)
    now = datetime.now(UTC)
    week = now + timedelta(days=7)
    known = set(FIGURES)
    bravo = Actor("bravo-admin", "enterprise_admin", "BRAVO", "local")
    charlie = Actor("charlie-admin", "enterprise_admin", "CHARLIE", "local")
    with engine.begin() as conn:
        ids = [
            offers.make(conn, bravo, "BRAVO", "CHARLIE", (97_531_000, 432_190, 2025, week), 4_000_000_000, known, now),
            offers.make(conn, charlie, "CHARLIE", "ALPHA", (1_000, 8_000, 2025, week), 5_000, known, now),
        ]
    assert ids == [BRAVO_OFFER, ALPHA_OFFER]
    engine.dispose()


def seed_requests(url: str) -> None:
    """The requests above, through the platform's workflow."""
    engine = make_engine(url)
    office = Actor("ana-analyst", "park_analyst", None, "local")
    now = datetime.now(UTC)
    due, past = str(now.date() + timedelta(days=30)), str(now.date() - timedelta(days=30))
    with engine.begin() as conn:
        ids = [
            workflow.open_request(conn, office, "BRAVO", "natural_gas", "2026-03", due, "bravo furnace gas", now),
            workflow.open_request(conn, office, "ALPHA", "diesel", "2026-03", due, "alpha forklifts", now),
            workflow.open_request(conn, office, "ALPHA", "value_added", "2025", past, "alpha statistics", now),
        ]
        assert ids == [BRAVO_REQUEST, ALPHA_REQUEST, ALPHA_OVERDUE_REQUEST]
        bravo = Actor("bravo-reporter", "enterprise_reporter", "BRAVO", "local")
        alpha = Actor("alpha-reporter", "enterprise_reporter", "ALPHA", "local")
        bill = workflow.evidence("bravo-gas-bill.pdf", PDF + b"% bravo\n")
        workflow.submit(conn, bravo, "BRAVO", BRAVO_REQUEST, "72,315", "Nm3", [bill], now)
        workflow.submit(conn, alpha, "ALPHA", ALPHA_REQUEST, "1.5", "吨", [workflow.evidence("diesel.pdf", PDF)], now)
    engine.dispose()


# A result version of 2025 (ALPHA and BRAVO), published today, with one objection of each in this order.
RESULT_VERSION, BRAVO_OBJECTION, ALPHA_OBJECTION = 1, 1, 2


def seed_results(url: str) -> None:
    """The result version above, through ledger.results and the platform's publication."""
    engine = make_engine(url)
    now = datetime.now(UTC)
    rows = [
        ResultRow(e, "C39", grade, "B", 70.0, credits_t, 900.0, 3000.0, 0.3, 0.33, f"{e.lower():0<64}", "p1", "cn")
        for e, grade, credits_t in (("ALPHA", 1, 12.5), ("BRAVO", 5, -97.531))
    ]
    version, _ = record_version(engine, 2025, rows, date(2026, 6, 30), "proposed", "airflow", now)
    assert version.id == RESULT_VERSION
    with engine.begin() as conn:
        publication.publish(conn, Actor("ana-analyst", "park_analyst", None, "local"), version.id, 5, now.date(), now)
        ids = [
            publication.file_objection(
                conn, Actor(f"{e.lower()}-admin", "enterprise_admin", e, "local"), e, version.id,
                f"{e.lower()} objects to its grade", now.date(), now,
            )
            for e in ("BRAVO", "ALPHA")
        ]  # fmt: skip
    assert ids == [BRAVO_OBJECTION, ALPHA_OBJECTION]
    engine.dispose()


def leaks_bravo(text: str) -> list[str]:
    """What of BRAVO's a response shows (empty: nothing)."""
    found = ["bravo"] if "bravo" in text.lower() else []
    return found + [f for f in BRAVO_FIGURES if f in text]


def write_results(store: InfluxStore, timezone: str) -> None:
    """Monthly results of the three enterprises, as the monthly DAG writes them."""
    points = []
    for enterprise, months in FIGURES.items():
        industry = "C34" if enterprise == "CHARLIE" else "C39"
        for period, (credits, grade, rating, tco2) in months.items():
            at = Month.of(period, timezone).start_ns
            points.append(
                CREDITS.point(
                    {"enterprise": enterprise, "industry": industry},
                    {
                        "credits_tco2": credits,
                        "emissions_tco2": tco2 * 2,
                        "intensity_t_per_10k_cny": 0.5 * grade,
                        "benchmark_t_per_10k_cny": 0.8,
                        "k_ratio": 0.25 * grade,
                        "grade": grade,
                        "rating": rating,
                        "rating_score": 90.0 - 10 * grade,
                        "rating_reasons": f"{enterprise.lower()} reasons",
                        "months_covered": int(period[-2:]),
                        "provisional": True,
                        "note": "",
                    },
                    at,
                )
            )
            for scope, share in (("scope1", 0.25), ("scope2", 0.75), ("total", 1.0)):
                points.append(
                    EMISSIONS_MONTHLY.point(
                        {"enterprise": enterprise, "workshop": "", "scope": scope},
                        {"tco2_location": tco2 * share, "tco2_market": tco2 * share * 0.9, "factor_set": "cn"},
                        at,
                    )
                )
            points.append(MONTH_COVERAGE.point({"enterprise": enterprise}, {"status": "data", "meters": 1}, at))
            for source, scope, share, factor, unit in (
                ("grid_electricity", "scope2", 0.75, GRID_T_PER_MWH, "MWh"),
                ("natural_gas", "scope1", 0.25, GAS_T_PER_10K_NM3, "10^4 Nm3"),
            ):
                points.append(
                    EMISSIONS_BY_SOURCE.point(
                        {"enterprise": enterprise, "workshop": "", "source": source, "scope": scope},
                        {
                            "quantity": tco2 * share / factor,
                            "unit": unit,
                            "factor_location_t_per_unit": factor,
                            "factor_market_t_per_unit": factor,
                            "factor_source": "test factor",
                            "tco2_location": tco2 * share,
                            "tco2_market": tco2 * share,
                            "factor_set": "cn",
                        },
                        at,
                    )
                )
            points.append(
                DATA_QUALITY.point(
                    {"enterprise": enterprise, "meter": f"{enterprise}-M", "register": "active_energy_import"},
                    {"completeness": 0.99, "gaps": 1, "resets": 0, "rollovers": 0, "estimated_intervals": 2},
                    at,
                )
            )
        for day in range(3):  # three days of March; BRAVO's gateway offline on the last
            at = Month.of(PERIODS[-1], timezone).start_ns + day * 86_400 * 10**9
            offline = enterprise == "BRAVO" and day == 2
            points.append(
                GATEWAY_QUALITY_DAILY.point(
                    {"enterprise": enterprise, "gateway": f"gw-{enterprise.lower()}"},
                    {"readings": 0.0 if offline else 96.0, "meters_silent": float(offline), "offline": offline},
                    at,
                )
            )
        at = Month.of(PERIODS[-1], timezone).start_ns
        gap_t = 310.5 if enterprise != "BRAVO" else 48_765.4  # BRAVO's is one of its figures
        points.append(
            NEARZERO_EVALUATION.point(
                {"enterprise": enterprise, "workshop": "", "profile": "suzhou-nzc-factory-2023", "indicator": "offset"},
                {
                    "subject": "enterprise",
                    "year": 2026,
                    "months": 3,
                    "provisional": True,
                    "name_zh": "抵消比例",
                    "name_en": "share offset",
                    "unit": "%",
                    "comparison": ">=",
                    "threshold": 80.0,
                    "value": 42.5,
                    "status": "fail",
                    "gap": 37.5,
                    "gap_tco2": gap_t,
                    "action": f"offset {gap_t:,.1f} t more",
                    "source": "test document",
                },
                at,
            )
        )
        if enterprise != "CHARLIE":
            at = Month.of(PERIODS[-1], timezone).start_ns
            points.append(
                NEAR_ZERO_PROGRESS.point(
                    {"enterprise": enterprise, "workshop": f"{enterprise}-WS-1"},
                    {"offset_ratio": 0.5, "target": 0.8, "required_ratio": 0.4, "status": "on_track", "on_track": True},
                    at,
                )
            )
    march = Month.of(PERIODS[-1], timezone).start_ns
    points.append(  # the park itself against a park-level profile: no enterprise tag
        NEARZERO_EVALUATION.point(
            {"enterprise": "", "workshop": "", "profile": "jiangsu-nzc-park-2024", "indicator": "renewable_share"},
            {
                "subject": "park",
                "year": 2026,
                "months": 3,
                "provisional": True,
                "name_en": "renewable electricity",
                "unit": "%",
                "comparison": ">=",
                "threshold": 30.0,
                "value": 12.25,
                "status": "fail",
                "action": "add 4.2 GWh of certified green power",
            },
            march,
        )
    )
    store.write(points)


def seed_ledger(url: str, timezone: str) -> None:
    """Vintage 2025 issued to ALPHA and BRAVO; BRAVO retires some (its own reference), ALPHA gives CHARLIE some."""
    engine = make_engine(url)
    migrate(engine)
    ledger = Ledger(engine, timezone)
    ledger.open_accounts(["ALPHA", "BRAVO", "CHARLIE"])
    sha = "a" * 64
    ledger.settle(
        2025,
        [SettledCredit("ALPHA", 40.0, sha, "p1", "cn"), SettledCredit("BRAVO", 4321.9, sha, "p1", "cn")],
        date(2026, 6, 30),
        "office",
    )
    ledger.retire("BRAVO", "321.9", 2025, "bravo-secret-retirement", "bravo-admin", "bravo memo")
    ledger.transfer("ALPHA", "CHARLIE", "5", 2025, "alpha-to-charlie", "alpha-admin", "80")
    engine.dispose()


@dataclass
class Park:
    """A platform application on a seeded database and InfluxDB, with one user per role."""

    config: PlatformConfig
    passwords: dict[str, str]
    clients: list[TestClient] = field(default_factory=list)

    @property
    def app(self):  # the application, made once
        if not hasattr(self, "_app"):
            self._app = create_app(self.config)
        return self._app

    def client(
        self, raise_server_exceptions: bool = True, address: str = "testclient", base_url: str = "http://testserver"
    ) -> TestClient:
        client = TestClient(
            self.app,
            base_url=base_url,
            raise_server_exceptions=raise_server_exceptions,
            follow_redirects=False,
            client=(address, 50000),
        )
        self.clients.append(client)
        return client

    def close(self) -> None:
        for client in self.clients:
            client.close()
        if hasattr(self, "_app"):
            self._app.state.backend.reader.dispose()
            self._app.state.backend.writer.dispose()
            self._app.state.backend.store.close()

    def login(self, username: str, password: str | None = None, client: TestClient | None = None) -> TestClient:
        """A client logged in as ``username`` (asserts the login worked)."""
        client = client or self.client()
        response = login(client, username, password or self.passwords[username])
        assert response.status_code == 303, response.text[:500]
        return client


def csrf_of(html: str) -> str:
    """The form token on a page."""
    marker = 'name="csrf_token" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


def login(client: TestClient, username: str, password: str) -> httpx.Response:
    form = client.get("/login")
    return client.post("/login", data={"username": username, "password": password, "csrf_token": csrf_of(form.text)})


def make_park(settings: Settings, store: InfluxStore, ledger_url: str, tmp_path: Path, **security: object) -> Park:
    registry_path = tmp_path / "registry.yaml"
    registry_path.write_text(REGISTRY, encoding="utf-8")
    registry = load_registry(registry_path)
    timezone = registry.park.timezone
    write_results(store, timezone)
    seed_ledger(ledger_url, timezone)
    run_dir = tmp_path / "run"
    for enterprise in FIGURES:
        for period in PERIODS:
            report = run_dir / "reports" / period / "enterprises" / f"{enterprise}.html"
            report.parent.mkdir(parents=True, exist_ok=True)
            report.write_text(f"<h1>{enterprise} report {period}</h1>", encoding="utf-8")
    passwords = {}
    engine = make_engine(ledger_url)
    with engine.begin() as conn:
        for username, (role, enterprise) in ROLES_USERS.items():
            passwords[username] = auth.generate_password()
            by = Actor("test", "cli", None, "local")
            auth.create_user(conn, username, role, enterprise, passwords[username], by, set(FIGURES))
    engine.dispose()
    seed_requests(ledger_url)
    seed_offers(ledger_url)
    seed_results(ledger_url)
    config = PlatformConfig(
        ledger_url=ledger_url,
        influx=read_only_settings(settings).influx,  # the platform reads InfluxDB with the READ role
        registry=registry_path,
        run_dir=run_dir,
        security=PlatformSettings(**security),  # type: ignore[arg-type]
    )
    return Park(config, passwords)


@pytest.fixture
def park(settings: Settings, store: InfluxStore, ledger_url: str, tmp_path: Path) -> Iterator[Park]:
    """The test park on SQLite and on the real PostgreSQL (``ledger_url``), InfluxDB of the test's own."""
    made = make_park(settings, store, ledger_url, tmp_path)
    yield made
    made.close()
