"""What the ledger refuses, each with a reason an operator can act on."""

from __future__ import annotations


class LedgerError(ValueError):
    """A request the ledger refused; nothing of it was booked."""


class UnknownEnterpriseError(LedgerError):
    pass


class InsufficientBalanceError(LedgerError):
    pass


class WrongVintageError(LedgerError):
    pass


class DuplicateReferenceError(LedgerError):
    """A reference already used by a request with other content: a retry must repeat the request exactly."""


class ReservedReferenceError(LedgerError):
    """A caller's reference in the namespace of the ledger's own bookings (settlements)."""


class NothingToSettleError(LedgerError):
    pass
