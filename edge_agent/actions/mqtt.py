"""The "mqtt" output: readings, forecasts, anomaly scores and alarm events published to
any MQTT broker (Node-RED, Home Assistant, Telegraf, a SCADA gateway), with topic
templates, QoS and retain settings, and Home Assistant MQTT discovery as an option.

This is the integration output, not the device's sync transport (docs/mqtt.md): what
it publishes is for local consumers and carries no delivery guarantee beyond its QoS.

- Alarm events (the rules that list this action): ``notify`` appends to a bounded queue
  (oldest dropped and counted when full); the publisher task sends them in order once
  connected, to ``alarm_topic``, and the rule's state ("ON" while one of its alarms is
  active, else "OFF", retained) to ``rule_topic``.
- Channels: every ``interval_s``, each channel with a new sample since the last round
  gets its reading, forecast and score published (skipped while disconnected: they are
  states, the next round brings the newer one).
- Availability: "online" (retained) on each connection, "offline" as the last will.
- Home Assistant (``home_assistant = { enabled = true }``): on each connection and for
  each new channel, retained discovery configs: a sensor per channel (its reading, the
  forecast as attributes), a sensor per channel's anomaly score and a binary_sensor
  (device_class problem) per alarm rule, all under one device named after the agent.

Counters: queued, published, dropped, states (channel messages), plus the connection's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import string
from collections import deque
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from edge_agent import __version__
from edge_agent.actions.base import ActionConfigBase, AgentFeed, ChannelSnapshot
from edge_agent.alarms.model import Alarm, AlarmEvent, AlarmEventKind
from edgetwin_common.config import Strict
from edgetwin_common.mqtt import BrokerConfig, Connection, Will
from edgetwin_common.plugins import Plugin

__all__ = ["PLUGIN", "HomeAssistantConfig", "MqttAction", "MqttActionConfig"]

log = logging.getLogger(__name__)

_FIELDS: dict[str, frozenset[str]] = {
    "reading_topic": frozenset({"agent", "channel"}),
    "forecast_topic": frozenset({"agent", "channel"}),
    "score_topic": frozenset({"agent", "channel"}),
    "alarm_topic": frozenset({"agent", "channel", "rule", "kind"}),
    "rule_topic": frozenset({"agent", "rule"}),
    "availability_topic": frozenset({"agent"}),
}
"""The placeholders each topic template may use."""


def _check_template(template: str, allowed: frozenset[str]) -> str:
    if "+" in template or "#" in template:
        raise ValueError("a topic to publish on has no wildcards (+, #)")
    names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    unknown = sorted(names - allowed)
    if unknown:
        raise ValueError(f"unknown placeholder(s) {unknown}; this topic takes {sorted(allowed)}")
    return template


class HomeAssistantConfig(Strict):
    """Home Assistant MQTT discovery (https://www.home-assistant.io/integrations/mqtt/)."""

    enabled: bool = False
    """Publish discovery configs so the channels and alarm rules appear by themselves."""
    discovery_prefix: Annotated[str, Field(min_length=1, pattern=r"^[^+#]+$")] = "homeassistant"
    """Home Assistant's discovery prefix (its MQTT integration setting)."""


class MqttActionConfig(ActionConfigBase):
    """Publishes readings, forecasts, scores and alarm events to an MQTT broker."""

    type: Literal["mqtt"]
    broker: BrokerConfig = BrokerConfig()
    """The broker: host, port, username/password, TLS, client certificate, keep-alive."""
    client_id: str = ""
    """MQTT client id ("" for edgetwin-<agent>-<action name>)."""
    qos: Literal[0, 1, 2] = 1
    """QoS of every message published."""
    retain: bool = True
    """Retain readings, forecasts, scores and rule states (the last value is there for
    a subscriber that connects later). Alarm events are never retained, discovery
    configs and availability always are."""
    interval_s: Annotated[float, Field(gt=0, le=86400, allow_inf_nan=False)] = 5.0
    """Seconds between two publications of the channels' last samples."""
    reading_topic: str = "edgetwin/{agent}/{channel}/reading"
    """Topic of a channel's last reading, JSON {ts, value, unit}; "" to not publish."""
    forecast_topic: str = "edgetwin/{agent}/{channel}/forecast"
    """Topic of its forecasts, JSON {ts, horizons, values}; "" to not publish."""
    score_topic: str = "edgetwin/{agent}/{channel}/score"
    """Topic of its anomaly score, JSON {ts, score}; "" to not publish."""
    alarm_topic: str = "edgetwin/{agent}/alarms/{rule}/event"
    """Topic of each alarm event, JSON as the webhook's body ({kind} is raised,
    acknowledged or cleared)."""
    rule_topic: str = "edgetwin/{agent}/alarms/{rule}/state"
    """Topic of a rule's state: "ON" while one of its alarms is active, else "OFF"."""
    availability_topic: str = "edgetwin/{agent}/status"
    """"online" while connected, "offline" (the broker's last will) after."""
    home_assistant: HomeAssistantConfig = HomeAssistantConfig()
    """Home Assistant MQTT discovery."""
    queue_max: Annotated[int, Field(ge=1)] = 1000
    """Alarm events waiting for the broker; past it the oldest is dropped and counted."""

    @field_validator(*_FIELDS)
    @classmethod
    def _templates(cls, value: str, info: Any) -> str:
        return _check_template(value, _FIELDS[info.field_name])


class MqttAction:
    """Publishes to ``config.broker``. See the module docstring for the behaviour."""

    def __init__(self, config: MqttActionConfig) -> None:
        self.name = config.name
        self.config = config
        self.counters: dict[str, int] = {"queued": 0, "published": 0, "dropped": 0, "states": 0}
        self._feed: AgentFeed | None = None
        self._agent = "edgetwin"
        self._queue: deque[AlarmEvent] = deque()
        self._active: dict[str, set[int]] = {}
        """Active alarm ids per rule (a rule's binary state)."""
        self._rule_dirty: set[str] = set()
        self._last_ts: dict[str, float] = {}
        self._announced: set[str] = set()
        self._connection: Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._connected_again = False

    # -- what the agent calls ------------------------------------------------------

    def attach(self, feed: AgentFeed) -> None:
        """Take the agent's name, channels and rules (before ``start``)."""
        self._feed = feed
        self._agent = feed.agent
        for rule in feed.rules:
            self._active.setdefault(rule, set())
            self._rule_dirty.add(rule)

    def restore(self, alarms: list[Alarm]) -> None:
        """Alarms still open from before a restart: their rules show ON."""
        for alarm in alarms:
            if alarm.state.is_active:
                self._active.setdefault(alarm.rule, set()).add(alarm.id)
                self._rule_dirty.add(alarm.rule)

    def notify(self, event: AlarmEvent) -> None:
        """Queue the event (dropping the oldest past ``queue_max``); returns at once."""
        if len(self._queue) >= self.config.queue_max:
            self._queue.popleft()
            self.counters["dropped"] += 1
        self._queue.append(event)
        self.counters["queued"] += 1
        self._wake()

    async def start(self) -> None:
        """Connect (in the connection's thread) and start the publisher task."""
        if self._worker is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        config = self.config
        client_id = config.client_id or f"edgetwin-{self._agent}-{self.name}"
        self._connection = Connection(
            config.broker,
            client_id,
            on_connect=self._on_connect,
            will=Will(self._topic(config.availability_topic), b"offline", 1, True),
            mqtt5=False,
        )
        self._connection.start()
        self._worker = asyncio.create_task(self._run(), name=f"mqtt:{self.name}")

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Publish what is queued for at most ``timeout_s`` (when connected), say
        "offline", disconnect; events still queued are counted as dropped."""
        worker, connection = self._worker, self._connection
        if worker is None or connection is None:
            return
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
        if connection.is_connected:
            self._publish_events()
            info = connection.publish(
                self._topic(self.config.availability_topic), b"offline", 1, True
            )
            with contextlib.suppress(RuntimeError, ValueError):
                await asyncio.to_thread(info.wait_for_publish, timeout_s)
        if self._queue:
            self.counters["dropped"] += len(self._queue)
            log.warning("mqtt %s: stopped with %d event(s) unsent", self.name, len(self._queue))
            self._queue.clear()
        await asyncio.to_thread(connection.stop, timeout_s)
        self._worker = None
        self._connection = None

    @property
    def is_connected(self) -> bool:
        return self._connection is not None and self._connection.is_connected

    # -- the publisher -------------------------------------------------------------

    def _wake(self) -> None:
        loop, wakeup = self._loop, self._wakeup
        if loop is not None and wakeup is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wakeup.set)

    def _on_connect(self, connection: Connection) -> None:
        # The connection's thread: hand the announcements over to the event loop.
        self._connected_again = True
        self._wake()

    async def _run(self) -> None:
        wakeup = self._wakeup
        assert wakeup is not None
        loop = asyncio.get_running_loop()
        next_states = loop.time()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), max(0.0, next_states - loop.time()))
            wakeup.clear()
            if not self.is_connected:
                next_states = loop.time() + self.config.interval_s
                continue
            if self._connected_again:
                self._connected_again = False
                self._announce()
            self._publish_events()
            if loop.time() >= next_states:
                self._publish_states()
                next_states = loop.time() + self.config.interval_s

    def _publish(self, topic: str, payload: bytes | str, retain: bool) -> None:
        assert self._connection is not None
        self._connection.publish(topic, payload, self.config.qos, retain)
        self.counters["published"] += 1

    def _announce(self) -> None:
        """Availability, discovery configs and rule states: after every connection."""
        assert self._connection is not None
        self._connection.publish(self._topic(self.config.availability_topic), b"online", 1, True)
        self._announced.clear()
        self._last_ts.clear()
        if self.config.home_assistant.enabled:
            for rule in sorted(self._active):
                self._discover(*self.rule_discovery(rule))
        self._rule_dirty.update(self._active)

    def _publish_events(self) -> None:
        config = self.config
        while self._queue and self.is_connected:
            event = self._queue.popleft()
            alarm = event.alarm
            active = self._active.setdefault(alarm.rule, set())
            if f"rule:{alarm.rule}" not in self._announced and config.home_assistant.enabled:
                self._discover(*self.rule_discovery(alarm.rule))
            if event.kind is AlarmEventKind.CLEARED or not alarm.state.is_active:
                active.discard(alarm.id)
            else:
                active.add(alarm.id)
            self._rule_dirty.add(alarm.rule)
            topic = self._topic(
                config.alarm_topic, channel=alarm.channel, rule=alarm.rule, kind=event.kind.value
            )
            self._publish(topic, json.dumps(event.to_dict()), retain=False)
        for rule in sorted(self._rule_dirty):
            state = b"ON" if self._active.get(rule) else b"OFF"
            self._publish(self._topic(config.rule_topic, rule=rule), state, config.retain)
        self._rule_dirty.clear()

    def _publish_states(self) -> None:
        if self._feed is None:
            return
        for snapshot in self._feed.channels():
            if self._last_ts.get(snapshot.channel) == snapshot.ts:
                continue
            self._last_ts[snapshot.channel] = snapshot.ts
            if (
                f"channel:{snapshot.channel}" not in self._announced
                and self.config.home_assistant.enabled
            ):
                for component in self.channel_discovery(snapshot):
                    self._discover(*component)
            self._publish_channel(snapshot)

    def _publish_channel(self, s: ChannelSnapshot) -> None:
        config, retain = self.config, self.config.retain
        if config.reading_topic:
            body: dict[str, Any] = {"ts": s.ts, "value": s.value, "unit": s.unit}
            self._publish(
                self._topic(config.reading_topic, channel=s.channel), json.dumps(body), retain
            )
        if config.forecast_topic and s.forecast is not None:
            body = {"ts": s.ts, "horizons": list(s.horizons), "values": list(s.forecast)}
            topic = self._topic(config.forecast_topic, channel=s.channel)
            self._publish(topic, json.dumps(body), retain)
        if config.score_topic and s.score is not None:
            body = {"ts": s.ts, "score": s.score}
            self._publish(
                self._topic(config.score_topic, channel=s.channel), json.dumps(body), retain
            )
        self.counters["states"] += 1

    # -- topics and Home Assistant discovery ---------------------------------------

    def _topic(self, template: str, **fields: str) -> str:
        return template.format(agent=self._agent, **fields)

    def _discover(self, key: str, topic: str, payload: dict[str, Any]) -> None:
        self._announced.add(key)
        assert self._connection is not None
        self._connection.publish(topic, json.dumps(payload), 1, True)
        self.counters["published"] += 1

    def _device(self) -> dict[str, Any]:
        return {
            "identifiers": [f"edgetwin_{self._agent}"],
            "name": self._agent,
            "manufacturer": "edgetwin",
            "model": "edge-agent",
            "sw_version": __version__,
        }

    def _ha_common(self, object_id: str, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "unique_id": f"edgetwin_{self._agent}_{object_id}",
            "device": self._device(),
            "availability_topic": self._topic(self.config.availability_topic),
            "payload_available": "online",
            "payload_not_available": "offline",
            "qos": self.config.qos,
        }

    def _discovery_topic(self, component: str, object_id: str) -> str:
        prefix = self.config.home_assistant.discovery_prefix
        return f"{prefix}/{component}/edgetwin_{_object_id(self._agent)}/{object_id}/config"

    def channel_discovery(self, s: ChannelSnapshot) -> list[tuple[str, str, dict[str, Any]]]:
        """(key, topic, payload) of the discovery configs of one channel: its reading's
        sensor (forecasts as attributes) and its anomaly score's sensor."""
        found: list[tuple[str, str, dict[str, Any]]] = []
        oid = _object_id(s.channel)
        if self.config.reading_topic:
            payload = self._ha_common(oid, s.channel)
            payload.update(
                state_topic=self._topic(self.config.reading_topic, channel=s.channel),
                value_template="{{ value_json.value }}",
                state_class="measurement",
            )
            if s.unit:
                payload["unit_of_measurement"] = s.unit
            if self.config.forecast_topic:
                topic = self._topic(self.config.forecast_topic, channel=s.channel)
                payload["json_attributes_topic"] = topic
            found.append((f"channel:{s.channel}", self._discovery_topic("sensor", oid), payload))
        if self.config.score_topic:
            payload = self._ha_common(f"{oid}_score", f"{s.channel} anomaly score")
            payload.update(
                state_topic=self._topic(self.config.score_topic, channel=s.channel),
                value_template="{{ value_json.score }}",
                state_class="measurement",
                icon="mdi:chart-bell-curve",
            )
            topic = self._discovery_topic("sensor", f"{oid}_score")
            found.append((f"channel:{s.channel}", topic, payload))
        return found

    def rule_discovery(self, rule: str) -> tuple[str, str, dict[str, Any]]:
        """(key, topic, payload) of an alarm rule's binary_sensor."""
        oid = f"alarm_{_object_id(rule)}"
        payload = self._ha_common(oid, f"alarm {rule}")
        payload.update(
            state_topic=self._topic(self.config.rule_topic, rule=rule),
            payload_on="ON",
            payload_off="OFF",
            device_class="problem",
        )
        return (f"rule:{rule}", self._discovery_topic("binary_sensor", oid), payload)


def _object_id(name: str) -> str:
    """Home Assistant's object ids take [a-zA-Z0-9_-]; names may also hold '.'."""
    return name.replace(".", "_")


PLUGIN = Plugin(MqttActionConfig, MqttAction)
