"""The checks every reading gets, whatever format it came in: register, unit, value, timestamp.

A value must be a finite, non-negative number below its meter's rollover point and at most its
register bound (:attr:`park.registry.Meter.max_register`: the registry's ``max_value``, else 1e12 in
the meter's unit for a register that does not wrap). The registry's ``max_per_hour`` is not checked
here: a rate needs the reading before, and the collector does not get a series in order (replicas
share it, messages are redelivered and forwarded late); the monthly step, which reads the whole
series, flags faster advances as spikes (``scoring.registers``).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from collectors.model import Reading, Reason
from park.registry import Meter
from park.units import UnitError, convert, normalize_unit

MAX_FUTURE = timedelta(minutes=10)  # clock skew a gateway may have before its readings are refused
MAX_AGE = timedelta(days=400)  # store-and-forward older than this is an operator's job, not a gateway's


def check_reading(
    meter: Meter,
    *,
    gateway: str,
    seq: int,
    register: str,
    when: datetime | None,
    value: object,
    unit: str,
    now: datetime,
    convert_unit: bool = False,
    max_age: timedelta = MAX_AGE,
) -> Reading | tuple[Reason, str]:
    """A :class:`Reading` in the meter's unit, multiplier applied, or (reason, detail).

    ``convert_unit`` lets a vendor's fixed unit (Shelly's Wh) become the meter's (kWh); the native
    format must state the meter's own unit, since a different one means a misconfigured gateway.
    """
    if register not in meter.registers:
        return Reason.UNKNOWN_REGISTER, f"meter {meter.id!r} has no register {register!r}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return Reason.SCHEMA, f"value {value!r} is not a number"
    try:
        number = float(value)
    except OverflowError:
        return Reason.NOT_FINITE, "value is too large for a float"
    try:
        canonical = normalize_unit(unit)
        if convert_unit:
            number = convert(number, canonical, meter.unit)
        elif canonical != meter.unit:
            return Reason.WRONG_UNIT, f"unit {unit!r}, the registry says {meter.unit!r}"
    except UnitError as exc:
        return Reason.WRONG_UNIT, str(exc)
    if not math.isfinite(number):
        return Reason.NOT_FINITE, f"value {number}"
    if number < 0:
        return Reason.NEGATIVE, f"register {number} < 0"
    if meter.rollover_at is not None and number >= meter.rollover_at:
        return Reason.ABSURD, f"register {number} >= rollover point {meter.rollover_at}"
    bound = meter.max_register
    if bound is not None and number > bound:
        return Reason.ABSURD, f"register {number} > {bound} {meter.unit}, the most meter {meter.id!r} can show"
    if when is None:
        return Reason.NO_TIMESTAMP, "no timestamp: a register needs the meter's time"
    if when.tzinfo is None:
        return Reason.NO_TIMEZONE, f"timestamp {when.isoformat()} has no UTC offset"
    if when > now + MAX_FUTURE:
        return Reason.FUTURE, f"timestamp {when.isoformat()} is ahead of receive time {now.isoformat()}"
    if when < now - max_age:
        return Reason.TOO_OLD, f"timestamp {when.isoformat()} is older than {max_age.days} days"
    return Reading(
        gateway=gateway,
        seq=seq,
        enterprise=meter.enterprise,
        workshop=meter.workshop or "",
        meter=meter.id,
        carrier=meter.carrier.value,
        register=register,
        time=when,
        raw_value=number,
        value=number * meter.multiplier_at(when),
    )
