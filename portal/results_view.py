"""The result versions as one person may see and change them: the park office every version of every
year (the auditor too, read-only), an enterprise its own rows of published versions. Bound, like
:class:`portal.data.View`, to the request's scope; the state machine is ``portal/publication.py``.

Reads of an enterprise's rows by the park office are not audited one by one (the park's lists are its
own work); a list downloaded is, with the version it was drawn from.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

from ledger.book import Ledger
from ledger.results import ResultVersion, versions
from portal import publication
from portal.audit import Actor, record
from portal.data import Backend
from portal.scope import ForbiddenError, NotFoundError, Scope


class ResultsView:
    """The publication pages' one way to data. ``today`` is the park's date the 公示 window is judged by."""

    def __init__(
        self, backend: Backend, scope: Scope, actor: Actor, working_days: int, today: Callable[[], date]
    ) -> None:
        self._b, self.scope, self.actor = backend, scope, actor
        self.working_days = working_days
        self._today = today

    def today(self) -> date:
        return self._today()

    # -- reading ----------------------------------------------------------------------------------------

    def park_versions(self) -> list[ResultVersion]:
        """Every version of every year, newest first (superseded ones included)."""
        self.scope.require_park()
        with self._b.reader.connect() as conn:
            return versions(conn)

    def version(self, version_id: int) -> publication.VersionView:
        """A version with all its rows and objections (the park office and the auditor)."""
        self.scope.require_park()
        with self._b.reader.connect() as conn:
            return publication.load_version(conn, version_id)

    def enterprise_versions(self, enterprise_id: str) -> list[publication.VersionView]:
        """The enterprise's rows of every version ever published, newest first, with its objections."""
        enterprise = self.scope.enterprise(enterprise_id)
        found = []
        with self._b.reader.connect() as conn:
            for v in versions(conn):
                if v.published_at is None:
                    continue
                try:
                    found.append(publication.load_version(conn, v.id, [enterprise.id]))
                except NotFoundError:  # no row of this enterprise in that version
                    continue
        return found

    def list_file(self, version_id: int, kind: str, fmt: str) -> tuple[bytes, str, str]:
        """(content, file name, media type) of the list ``kind`` drawn from version ``version_id``."""
        if self.scope.role not in (*publication.PARK_OFFICE, "auditor", "park_viewer"):
            raise ForbiddenError("the park office's lists are for the park office")
        if kind not in publication.LISTS or fmt not in ("csv", "xlsx"):
            raise NotFoundError(f"list {kind}.{fmt}")
        view = self.version(version_id)
        if fmt == "csv":
            content, media = publication.list_csv(view, kind), "text/csv; charset=utf-8"
        else:
            content = publication.list_xlsx(view, kind)
            media = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        name = f"{kind}-{view.version.year}-v{view.version.version}.{fmt}"
        with self._b.writer.begin() as conn:
            record(
                conn,
                self.actor,
                "download",
                f"results:{view.version.year}:v{view.version.version} list:{kind}",
                to_value=f"{name} ({len(content)} bytes)",
            )
        return content, name, media

    # -- changes ----------------------------------------------------------------------------------------

    def publish(self, version_id: int) -> date:
        with self._b.writer.begin() as conn:
            return publication.publish(conn, self.actor, version_id, self.working_days, self.today(), datetime.now(UTC))

    def finalise(self, version_id: int) -> None:
        with self._b.writer.begin() as conn:
            publication.finalise(conn, self.actor, version_id, self.today(), datetime.now(UTC))

    def file_objection(self, enterprise_id: str, version_id: int, reason: str) -> int:
        enterprise = self.scope.enterprise(enterprise_id)
        with self._b.writer.begin() as conn:
            return publication.file_objection(
                conn, self.actor, enterprise.id, version_id, reason, self.today(), datetime.now(UTC)
            )

    def decide_objection(self, version_id: int, objection_id: int, decision: str, reason: str) -> None:
        self.scope.require_park()
        with self._b.writer.begin() as conn:
            publication.decide_objection(
                conn, self.actor, version_id, objection_id, decision, reason, datetime.now(UTC)
            )

    def approve_issuance(self, version_id: int) -> dict[str, int]:
        self.scope.require_park()
        ledger = Ledger(self._b.writer, self._b.timezone, credit_validity_years=self._b.credit_validity_years)
        return publication.approve_issuance(ledger, self.actor, version_id, datetime.now(UTC))
