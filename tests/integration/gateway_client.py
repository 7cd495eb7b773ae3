"""A gateway as the broker sees it, for the credential tests: one MQTT 5 paho client that records its
CONNACK, its disconnection and every PUBACK's reason code (MQTT 5 tells a publisher "not authorized";
3.1.1 would not)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from park.registry import GatewayFormat
from park.topics import LAYOUTS


@dataclass
class GatewayClient:
    host: str
    port: int
    gateway_id: str
    password: str
    connack: str | None = None
    disconnected_at: float | None = None
    pubacks: dict[int, str] = field(default_factory=dict)
    _event: threading.Condition = field(default_factory=threading.Condition)

    def connect(self, timeout_s: float = 10.0) -> str:
        """Connect (no automatic reconnection); the CONNACK's reason ("Success", "Not authorized", …)."""
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.gateway_id, protocol=mqtt.MQTTv5)
        client.username_pw_set(self.gateway_id, self.password)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.reconnect_delay_set(3600, 3600)  # a refused gateway does not come back during a test
        self.client = client
        client.connect(self.host, self.port)
        client.loop_start()
        with self._event:
            self._event.wait_for(lambda: self.connack is not None, timeout_s)
        return str(self.connack)

    def _on_connect(self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        """Fires at the CONNACK."""
        with self._event:
            self.connack = str(reason)
            self._event.notify_all()

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, _reason: object, _p: object) -> None:
        """Fires when the connection ends, whoever ended it."""
        with self._event:
            self.disconnected_at = time.monotonic()
            self._event.notify_all()

    def _on_publish(self, _c: mqtt.Client, _u: object, mid: int, reason: object, _p: object) -> None:
        """Fires at the PUBACK (QoS 1)."""
        with self._event:
            self.pubacks[mid] = str(reason)
            self._event.notify_all()

    def publish_reading(
        self, enterprise: str, meter: str, ts: str, value_kwh: float, seq: int, timeout_s: float = 10.0
    ) -> str:
        """One native reading at QoS 1; the PUBACK's reason ("Success", "No matching subscribers",
        "Not authorized"), or "no PUBACK" if none came (a closed connection)."""
        payload = {
            "gateway": self.gateway_id,
            "seq": seq,
            "sent_at": ts,
            "readings": [
                {"meter": meter, "ts": ts, "register": "active_energy_import", "value": value_kwh, "unit": "kWh"}
            ],
        }
        topic = LAYOUTS[GatewayFormat.NATIVE].readings_topic(enterprise, self.gateway_id)
        info = self.client.publish(topic, json.dumps(payload), qos=1)
        with self._event:
            self._event.wait_for(lambda: info.mid in self.pubacks, timeout_s)
        return self.pubacks.get(info.mid, "no PUBACK")

    def wait_disconnected(self, timeout_s: float) -> bool:
        with self._event:
            return self._event.wait_for(lambda: self.disconnected_at is not None, timeout_s)

    def close(self) -> None:
        if hasattr(self, "client"):
            self.client.disconnect()
            self.client.loop_stop()
