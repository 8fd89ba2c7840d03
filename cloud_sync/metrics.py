"""Prometheus metrics of the cloud (``GET /metrics``, docs/cloud.md "Metrics").

Counters of this process (each replica counts its own; Prometheus sums them):

- ``cloudsync_ingest_batches_total{outcome}``: batches answered, ``stored`` or
  ``duplicate``, or ``rejected`` (any 4xx of ``POST /v1/batches``).
- ``cloudsync_ingest_rejects_total{reason}``: rejected batches by their error name
  (``batch_invalid``, ``body_too_large``, ``body_malformed``, ``sequence_out_of_order``...).

Gauges read from the database at scrape time (so every replica reports the fleet):

- ``cloudsync_devices{health}``: devices by health (ok, degraded, stale, unknown).
- ``cloudsync_releases{state}``: releases by rollout state (staged, canary, widening,
  complete, stopped).
- ``cloudsync_open_alarms{severity}``: alarms of the fleet not cleared.
- ``cloudsync_notifications_pending``: webhook calls not yet accepted (docs/cloud.md).

One ``CollectorRegistry`` per app: no process-wide metric state.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from cloud_sync.config import FleetSection
from cloud_sync.db.models import Device, NotificationDelivery, Release, StoredAlarm
from cloud_sync.db.session import read_connection
from cloud_sync.fleet import Health, health_of
from cloud_sync.releases.model import ReleaseState

INGEST_OUTCOMES = ("stored", "duplicate", "rejected")
SEVERITIES = ("info", "warning", "critical")


class CloudMetrics:
    """The app's registry and the counters its routes move."""

    def __init__(self, engine: Engine, fleet: FleetSection) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.ingest = Counter(
            "cloudsync_ingest_batches",
            "Batches answered by POST /v1/batches, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in INGEST_OUTCOMES:
            self.ingest.labels(outcome)
        self.rejects = Counter(
            "cloudsync_ingest_rejects",
            "Batches refused, by the error name of the answer.",
            ["reason"],
            registry=self.registry,
        )
        self.registry.register(FleetCollector(engine, fleet))

    def count_batch(self, duplicate: bool) -> None:
        self.ingest.labels("duplicate" if duplicate else "stored").inc()

    def count_reject(self, reason: str) -> None:
        self.ingest.labels("rejected").inc()
        self.rejects.labels(reason).inc()


_FLEET_FAMILIES: tuple[tuple[str, str, list[str]], ...] = (
    ("cloudsync_devices", "Registered devices by health.", ["health"]),
    ("cloudsync_releases", "Releases by rollout state.", ["state"]),
    ("cloudsync_open_alarms", "Alarms of the fleet not cleared.", ["severity"]),
    ("cloudsync_notifications_pending", "Webhook calls not yet accepted by their receiver.", []),
)


class FleetCollector(Collector):
    """Devices by health, releases by state, open alarms by severity, read per scrape.
    Scrapes run on the server's threads; one at a time reads the database."""

    def __init__(self, engine: Engine, fleet: FleetSection) -> None:
        self._engine = engine
        self._fleet = fleet
        self._lock = threading.Lock()

    def describe(self) -> Iterator[Metric]:
        """The families without reading the database (registering calls this)."""
        for name, documentation, labels in _FLEET_FAMILIES:
            yield GaugeMetricFamily(name, documentation, labels=labels)

    def collect(self) -> Iterator[Metric]:
        with self._lock, read_connection(self._engine) as conn:
            devices = conn.execute(select(Device.reported, Device.last_seen)).all()
            releases = dict(
                conn.execute(select(Release.state, func.count()).group_by(Release.state)).all()
            )
            pending = conn.execute(
                select(func.count())
                .select_from(NotificationDelivery)
                .where(NotificationDelivery.delivered_at.is_(None))
            ).scalar_one()
            alarms = dict(
                conn.execute(
                    select(StoredAlarm.severity, func.count())
                    .where(StoredAlarm.state != "cleared")
                    .group_by(StoredAlarm.severity)
                ).all()
            )
        now = time.time()
        health = {h.value: 0 for h in Health}
        for reported, last_seen in devices:
            health[health_of(reported, last_seen, now, self._fleet.stale_after_s).value] += 1
        states = {state.value: releases.get(state.value, 0) for state in ReleaseState}
        severities = {s: alarms.get(s, 0) for s in SEVERITIES}
        values: list[dict[str, int] | int] = [health, states, severities, pending]
        for (name, documentation, labels), value in zip(_FLEET_FAMILIES, values, strict=True):
            family = GaugeMetricFamily(name, documentation, labels=labels)
            if isinstance(value, dict):
                for key, count in value.items():
                    family.add_metric([key], count)
            else:
                family.add_metric([], value)
            yield family
