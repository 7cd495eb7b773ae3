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


class ExpiredError(LedgerError):
    """An external unit past its registry's validity, or credits past the policy's banking validity."""


class SerialUsedError(LedgerError):
    """An external unit's serial was used already: a unit counts once park-wide."""


class OffsetCapError(LedgerError):
    """External units beyond the share of an obligation the policy lets them cover."""
