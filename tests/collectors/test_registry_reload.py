"""The collector's registry reload (collectors/registry_reload.py): a changed registry reaches every
replica; an unchanged one is not handed out again; a failing source keeps the last good registry with
one warning for the whole outage and one line when it answers again."""

from __future__ import annotations

import logging

from collectors.registry_reload import RegistryReloader
from park.registry import Registry, load_registry
from park.settings import DEMO_REGISTRY


class Replica:
    def __init__(self) -> None:
        self.given: list[Registry] = []

    def use_registry(self, registry: Registry) -> None:
        self.given.append(registry)


class Source:
    """What the database would answer: a registry, or an error while it is down."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.down: Exception | None = None

    def __call__(self) -> Registry:
        if self.down is not None:
            raise self.down
        return self.registry


def test_a_change_reaches_every_replica_and_an_outage_keeps_the_last_good_registry(caplog):
    demo = load_registry(DEMO_REGISTRY)
    source = Source(demo.model_copy())
    replicas = [Replica(), Replica()]
    reloader = RegistryReloader(source, demo, replicas, interval_s=60)
    assert reloader.poll() is False and replicas[0].given == []  # equal to the one they have

    changed = demo.model_copy(update={"meters": demo.meters[:-1]})
    source.registry = changed
    assert reloader.poll() is True
    assert [r.given for r in replicas] == [[changed], [changed]] and reloader.current is changed

    caplog.set_level(logging.INFO, logger="parkcarbon.collector")
    source.down = ConnectionError("database at 127.0.0.1:5432 refused the connection")
    for _ in range(3):
        assert reloader.poll() is False
    assert reloader.failures == 3 and reloader.current is changed and len(replicas[0].given) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "registry reload failed (ConnectionError: database at 127.0.0.1:5432 refused the connection);"
        f" collecting with the last good registry (version {demo.version})"
    ]
    source.down = None
    source.registry = demo
    assert reloader.poll() is True and replicas[1].given[-1] is demo
    assert "registry reload works again" in [r.getMessage() for r in caplog.records]
    assert reloader.reloads == 2
