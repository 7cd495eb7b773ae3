"""Credits as given by people (t CO2, up to three decimals) and as booked (whole kg); prices as given
(CNY per t, up to two decimals) and as booked (whole fen).

Whatever a client sends, from the CLI or the platform, is checked here: text, NaN, infinities,
negative or oversized numbers are refused with a reason (a ``LedgerError``), never left to fail
later in Decimal arithmetic or in a 64-bit database column.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from ledger.errors import LedgerError

KG_PER_T = 1000
FEN_PER_CNY = 100
# Far above any park's credits or any credit price, far below what the 64-bit columns hold (and small
# enough that quantizing to kg or fen stays exact in Decimal's 28 digits).
MAX_T = Decimal(10) ** 12
MAX_CNY_PER_T = Decimal(10) ** 12


def _finite(value: object, what: str, unit: str) -> Decimal:
    """``value`` as a finite Decimal; text, NaN and the infinities are refused."""
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        number = Decimal("NaN")
    if not number.is_finite():
        raise LedgerError(f"{what} {str(value)!r} is not a finite number of {unit}")
    return number


def t_to_kg(amount_t: Decimal | str | int | float) -> int:
    """A positive amount of credits in t CO2 → whole kg; finer than 1 kg or not positive is refused.

    >>> t_to_kg("12.345")
    12345
    """
    amount = _finite(amount_t, "amount", "t CO2")
    if amount <= 0:
        raise LedgerError(f"amount {amount_t} t must be positive")
    if amount > MAX_T:
        raise LedgerError(f"amount {amount_t} t is more than the ledger books at once (at most {MAX_T:,} t)")
    if amount != amount.quantize(Decimal(1) / KG_PER_T):
        raise LedgerError(f"amount {amount_t} t is finer than the ledger's 1 kg (0.001 t)")
    return int(amount * KG_PER_T)


def cny_to_fen(price_cny_per_t: Decimal | str | int | float) -> int:
    """A price per credit in CNY → whole fen (0.01 CNY); negative or finer than 1 fen is refused.

    >>> cny_to_fen("58.5")
    5850
    """
    price = _finite(price_cny_per_t, "price", "CNY per t")
    if price > MAX_CNY_PER_T:
        raise LedgerError(f"price {price_cny_per_t} CNY/t is more than the ledger books (at most {MAX_CNY_PER_T:,})")
    if price < 0 or price != price.quantize(Decimal(1) / FEN_PER_CNY):
        raise LedgerError(f"price {price_cny_per_t} CNY/t must be ≥ 0 with at most 2 decimals")
    return int(price * FEN_PER_CNY)


def kg_to_t(amount_kg: int) -> Decimal:
    """Whole kg → t CO2, exactly."""
    return Decimal(amount_kg) / KG_PER_T


def credits_to_kg(credits_t: float) -> int:
    """A computed (unrounded) credit figure in t → the whole kg the ledger books (half to even)."""
    return int(Decimal(repr(float(credits_t))).scaleb(3).to_integral_value())
