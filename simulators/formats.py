"""Payloads of real gateway formats, as the simulator's non-native gateways send them.

Shapes follow the public samples in tests/data/payloads (Tasmota SENSOR, Shelly Gen2 NotifyStatus
emdata, EdgeLogger DL/T 645 batch); ``collectors.formats`` decodes them.
"""

from __future__ import annotations

import json
from datetime import datetime

from park.registry import GatewayFormat, Register
from park.topics import layout

IMPORT = Register.ACTIVE_ENERGY_IMPORT.value
EXPORT = Register.ACTIVE_ENERGY_EXPORT.value

# device_ref → register → value in the meter's unit (kWh for the electricity meters these formats carry)
Values = dict[str, dict[str, float]]


def status_message(fmt: GatewayFormat, enterprise: str, gateway: str, online: bool) -> tuple[str, bytes]:
    """Topic and payload of the retained status (and, with online False, of the last will)."""
    topic = layout(fmt).status_topic(enterprise, gateway)
    if fmt is GatewayFormat.TASMOTA:
        return topic, b"Online" if online else b"Offline"
    if fmt is GatewayFormat.SHELLY_GEN2:
        return topic, b"true" if online else b"false"
    state = "online" if online else "offline"
    return topic, json.dumps({"state": state}).encode()


def encode(fmt: GatewayFormat, gateway: str, local_time: datetime, values: Values) -> bytes:
    """One message of ``gateway`` at ``local_time`` (park time) carrying ``values``."""
    if fmt is GatewayFormat.TASMOTA:
        channels = sorted(values, key=int)
        totals = [round(values[c][IMPORT], 3) for c in channels]
        body: dict[str, object] = {
            "Time": local_time.replace(tzinfo=None).isoformat(timespec="seconds"),
            "ENERGY": {"TotalStartTime": "2024-01-01T00:00:00", "Total": totals[0] if len(totals) == 1 else totals},
        }
    elif fmt is GatewayFormat.SHELLY_GEN2:
        params: dict[str, object] = {"ts": round(local_time.timestamp(), 2)}
        for ref, registers in sorted(values.items()):
            params[ref] = {
                "id": int(ref.split(":")[1]),
                "total_act": round(registers.get(IMPORT, 0.0) * 1000, 2),
                "total_act_ret": round(registers.get(EXPORT, 0.0) * 1000, 2),
            }
        body = {"src": gateway, "dst": "parkcarbon/events", "method": "NotifyStatus", "params": params}
    elif fmt is GatewayFormat.DLT645_JSON:
        stamp = local_time.strftime("%Y%m%d%H%M%S") + f"{local_time.microsecond // 1000:03d}"
        body = {
            "msgType": "up",
            "msgId": f"{gateway}-{stamp}",
            "msgCreateTime": stamp,
            "source": {"ipAddress": None, "gatewayId": gateway},
            "batch": [
                {
                    "timestamp": stamp,
                    "device_type": "three_phase_meter",
                    "device_id": ref,
                    "metrics": {
                        "energy": {
                            "active": {
                                "data_type": "float",
                                "unit": "kW",
                                "value": {"forward": registers.get(IMPORT, 0.0), "reverse": registers.get(EXPORT, 0.0)},
                            }
                        }
                    },
                    "status": {"device_status": 0, "data_quality": 100},
                }
                for ref, registers in sorted(values.items())
            ],
        }
    else:
        raise ValueError(f"{fmt} is the native format")
    return json.dumps(body, ensure_ascii=False).encode()
