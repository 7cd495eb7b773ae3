"""The MQTT contract: each gateway format's topics, spelled once.

The collector subscribes to :func:`subscriptions`, matches topics with :meth:`Layout.match`; the
simulator publishes to :meth:`Layout.readings_topic` and :meth:`Layout.status_topic`; the broker's
ACL comes from :func:`acl`. A topic holds ``{enterprise}`` and ``{gateway}`` placeholders, each one
whole level.
"""

from __future__ import annotations

from dataclasses import dataclass

from park.registry import SERVICE_ACCOUNT_PREFIX, GatewayFormat

COLLECTOR_USER = SERVICE_ACCOUNT_PREFIX  # collector replica N is the broker user collector-N


def collector_user(replica: int) -> str:
    """The broker account of collector replica ``replica``. Mosquitto takes the user name as the client
    id (``use_username_as_clientid``), so it is also the replica's client id: no other account, and no
    gateway, can present it or take the replica's session."""
    if replica < 0:
        raise ValueError(f"a replica number is 0 or more, not {replica}")
    return f"{COLLECTOR_USER}-{replica}"


@dataclass(frozen=True)
class Layout:
    format: GatewayFormat
    readings: str
    status: str | None  # retained status and last will, if the format has any

    def readings_topic(self, enterprise: str, gateway: str) -> str:
        return self.readings.format(enterprise=enterprise, gateway=gateway)

    def status_topic(self, enterprise: str, gateway: str) -> str:
        if self.status is None:
            raise ValueError(f"the {self.format.value} format has no status topic")
        return self.status.format(enterprise=enterprise, gateway=gateway)


_NATIVE_STATUS = "carbon/v1/{enterprise}/{gateway}/status"
LAYOUTS: dict[GatewayFormat, Layout] = {
    layout.format: layout
    for layout in (
        Layout(GatewayFormat.NATIVE, "carbon/v1/{enterprise}/{gateway}/readings", _NATIVE_STATUS),
        Layout(GatewayFormat.TASMOTA, "tele/{gateway}/SENSOR", "tele/{gateway}/LWT"),
        Layout(GatewayFormat.SHELLY_GEN2, "{gateway}/events/rpc", "{gateway}/online"),
        # The edge gateway has no status message of its own: it announces itself in the native way.
        Layout(GatewayFormat.DLT645_JSON, "device/power/up/{gateway}", _NATIVE_STATUS),
    )
}


def layout(fmt: GatewayFormat) -> Layout:
    return LAYOUTS[fmt]


def topic_filter(template: str) -> str:
    """The subscription filter of a topic template: each placeholder level becomes ``+``."""
    return "/".join("+" if part.startswith("{") else part for part in template.split("/"))


def match(template: str, topic: str) -> dict[str, str] | None:
    """The placeholders' values if ``topic`` has the template's shape (no empty level), else None."""
    parts, pattern = topic.split("/"), template.split("/")
    if len(parts) != len(pattern):
        return None
    values: dict[str, str] = {}
    for want, got in zip(pattern, parts, strict=True):
        if want.startswith("{"):
            if not got:
                return None
            values[want[1:-1]] = got
        elif want != got:
            return None
    return values


@dataclass(frozen=True)
class Matched:
    """A topic recognised as one format's readings or status."""

    format: GatewayFormat
    kind: str  # "readings" or "status"
    gateway: str
    enterprise: str | None  # only where the topic carries it (native)


def classify(topic: str) -> Matched | None:
    """Which format's readings or status ``topic`` is, with its gateway (and enterprise), or None."""
    for lay in LAYOUTS.values():
        for kind, template in (("readings", lay.readings), ("status", lay.status)):
            if template is None:
                continue
            values = match(template, topic)
            if values is not None:
                return Matched(lay.format, kind, values["gateway"], values.get("enterprise"))
    return None


def _templates() -> list[str]:
    """Every distinct topic template, readings first, in the order of :data:`LAYOUTS`."""
    readings = [lay.readings for lay in LAYOUTS.values()]
    status = [lay.status for lay in LAYOUTS.values() if lay.status is not None]
    return list(dict.fromkeys(readings + status))


def subscriptions() -> tuple[list[str], list[str]]:
    """(readings filters, status filters) the collector subscribes to."""
    readings = [topic_filter(lay.readings) for lay in LAYOUTS.values()]
    status = [topic_filter(t) for t in _templates() if topic_filter(t) not in readings]
    return readings, status


def acl(collector_replicas: int) -> str:
    """Mosquitto's ACL: each collector replica's account (``collector-N``, N < ``collector_replicas``)
    reads every format's topics and writes nothing; every gateway (username = gateway id) may publish
    only its own topics, each exactly (no extra levels), and read nothing."""
    lines = ["# written by parkcarbon (park/topics.py: acl)"]
    for replica in range(collector_replicas):
        lines += [f"user {collector_user(replica)}"]
        lines += [f"topic read {topic_filter(t)}" for t in _templates()]
        lines += [""]
    lines += ["# every gateway (username = gateway id) may publish under its own id only"]
    lines += ["pattern write " + t.replace("{gateway}", "%u").replace("{enterprise}", "+") for t in _templates()]
    return "\n".join(lines) + "\n"
