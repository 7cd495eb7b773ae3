"""Tenant isolation in one place.

Every request of a logged-in person is given exactly one :class:`Scope`, made from its session, and
every read the platform does goes through a :class:`portal.data.View` bound to that scope: the routes
never see the database, InfluxDB or the report files themselves. The scope

- names the enterprises the person may see: all of them for the park's roles and the auditor, its own
  for an enterprise's roles, none for a bank's user (``bank_viewer``): a bank sees no enterprise's pages
  and none of the park's, only the credit reports of the enterprises whose consent to its bank stands at
  the time of the request, which ``portal.data.View`` asks the database on every request
  (:meth:`Scope.require_bank` admits the bank's pages; ``portal/consent.py`` keeps the consents);
- turns an enterprise id from a path or a parameter into that enterprise, or raises 404 — the same
  answer as for an id that does not exist, so ids of other enterprises cannot even be probed;
- filters every frame read from InfluxDB or the ledger to the enterprises it may see (the queries are
  already restricted to them; the filter stands behind them);
- admits the park-wide views and the administration only for the roles allowed them (403 otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from park.registry import Enterprise, Registry
from portal.schema import BANK_ROLE, ENTERPRISE_ROLES

PARK_ROLES = ("park_admin", "park_analyst", "park_viewer", "auditor")
USER_ADMINS = ("park_admin", "enterprise_admin")  # who may manage users (of every enterprise / of its own)
ROLE_NAMES = {
    "park_admin": "park admin 园区管理员",
    "park_analyst": "park analyst 园区审核员",
    "park_viewer": "park viewer 园区查看",
    "auditor": "auditor 审计",
    "enterprise_admin": "enterprise admin 企业管理员",
    "enterprise_reporter": "enterprise reporter 企业填报员",
    BANK_ROLE: "bank viewer 银行查看",
}
BANK_HOME = "/bank"


class NotFoundError(LookupError):
    """An id the person may not see, answered as if it did not exist (HTTP 404)."""


class ForbiddenError(PermissionError):
    """A view or an action the person's role does not allow (HTTP 403)."""


def home_of(role: str, enterprise_id: str | None) -> str:
    """Where a user of ``role`` lands: the bank's reports, the park's page or the enterprise's own."""
    if role == BANK_ROLE:
        return BANK_HOME
    return "/park" if role in PARK_ROLES else f"/enterprises/{enterprise_id}"


@dataclass(frozen=True)
class Scope:
    """What one person may see. Made only by :meth:`of` from the session's user."""

    username: str
    role: str
    enterprise_id: str | None  # None: the park's roles, every enterprise (a bank's user: none)
    registry: Registry
    bank_id: str | None = None  # a bank's user: its bank

    @classmethod
    def of(
        cls, username: str, role: str, enterprise_id: str | None, registry: Registry, bank_id: str | None = None
    ) -> Scope:
        if role in ENTERPRISE_ROLES:
            if enterprise_id is None or enterprise_id not in registry.enterprise_by_id:
                raise ForbiddenError(f"{username}'s enterprise {enterprise_id!r} is not in the registry")
            bank_id = None
        elif role in PARK_ROLES:
            enterprise_id = bank_id = None
        elif role == BANK_ROLE:
            if bank_id is None:
                raise ForbiddenError(f"{username} belongs to no bank")
            enterprise_id = None
        else:
            raise ForbiddenError(f"unknown role {role!r}")
        return cls(username, role, enterprise_id, registry, bank_id)

    @property
    def is_park(self) -> bool:
        return self.role in PARK_ROLES

    @property
    def is_bank(self) -> bool:
        return self.role == BANK_ROLE

    @property
    def home(self) -> str:
        return home_of(self.role, self.enterprise_id)

    @property
    def enterprise_ids(self) -> frozenset[str]:
        if self.is_bank:  # a bank reaches reports through consents, never through the scope
            return frozenset()
        if self.enterprise_id is None:
            return frozenset(self.registry.enterprise_by_id)
        return frozenset({self.enterprise_id})

    def enterprises(self) -> list[Enterprise]:
        """The enterprises this person may see, in registry order."""
        return [e for e in self.registry.enterprises if e.id in self.enterprise_ids]

    def enterprise(self, enterprise_id: str) -> Enterprise:
        """The enterprise of an id from a request; 404 if it is not one this person may see."""
        if enterprise_id not in self.enterprise_ids:
            raise NotFoundError(enterprise_id)
        return self.registry.enterprise_by_id[enterprise_id]

    def rows(self, frame: pd.DataFrame, column: str = "enterprise") -> pd.DataFrame:
        """Only the rows of ``frame`` that belong to enterprises this person may see."""
        if not len(frame):
            return frame
        if column not in frame:
            raise ValueError(f"a frame without {column!r} cannot be scoped")
        return frame[frame[column].isin(self.enterprise_ids)].reset_index(drop=True)

    def require_park(self) -> None:
        """The park-wide views: the park's roles and the auditor."""
        if not self.is_park:
            raise ForbiddenError("the park's views are for the park office")

    def require_bank(self) -> str:
        """The bank's pages: a bank's user only; its bank."""
        if not self.is_bank or self.bank_id is None:
            raise ForbiddenError("the bank's pages are for a bank's users")
        return self.bank_id

    def require_user_admin(self, enterprise_id: str | None) -> None:
        """Managing the users of ``enterprise_id`` (None: the park's own users)."""
        if self.role == "park_admin":
            return
        if self.role == "enterprise_admin" and enterprise_id is not None and enterprise_id == self.enterprise_id:
            return
        raise ForbiddenError("managing users needs the park admin or this enterprise's admin")
