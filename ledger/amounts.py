"""Credits as given by people (t CO2, up to three decimals) and as booked (whole kg)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from ledger.errors import LedgerError

KG_PER_T = 1000


def t_to_kg(amount_t: Decimal | str | int | float) -> int:
    """A positive amount of credits in t CO2 → whole kg; finer than 1 kg or not positive is refused.

    >>> t_to_kg("12.345")
    12345
    """
    try:
        value = Decimal(str(amount_t)) * KG_PER_T
    except InvalidOperation as exc:
        raise LedgerError(f"amount {amount_t!r} is not a number of t CO2") from exc
    if not value.is_finite() or value != value.to_integral_value():
        raise LedgerError(f"amount {amount_t} t is finer than the ledger's 1 kg (0.001 t)")
    if value <= 0:
        raise LedgerError(f"amount {amount_t} t must be positive")
    return int(value)


def kg_to_t(amount_kg: int) -> Decimal:
    """Whole kg → t CO2, exactly."""
    return Decimal(amount_kg) / KG_PER_T


def credits_to_kg(credits_t: float) -> int:
    """A computed (unrounded) credit figure in t → the whole kg the ledger books (half to even)."""
    return int(Decimal(repr(float(credits_t))).scaleb(3).to_integral_value())
