"""The service's one TOML config (``cloud.toml``): a strict pydantic model.

``load_config(path)`` parses and validates without touching anything else (no database
opened, no port bound). Every problem is reported with its key path, the offending value
and a message (``ConfigInvalid.problems``). A commented example ships as
``cloud_sync/examples/cloud.toml``.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from cloud_sync.mqtt.config import MqttSection
from edgetwin_common.config import problems_from, read_toml, validate_toml
from edgetwin_common.errors import ConfigInvalid
from edgetwin_common.retry import BackoffConfig

DEFAULT_DATABASE_URL = "sqlite:///./cloud-sync.db"
DATABASE_URL_ENV = "CLOUD_SYNC_DATABASE_URL"
"""Environment variable that overrides [database] url (``--database-url`` overrides both)."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class ServerSection(Strict):
    host: str = "127.0.0.1"
    """Bind address. Behind a reverse proxy keep 127.0.0.1 (or the private interface)."""
    port: Annotated[int, Field(ge=0, le=65535)] = 8300
    forwarded_allow_ips: list[str] = Field(default_factory=lambda: ["127.0.0.1"])
    """Proxies whose X-Forwarded-For/-Proto are trusted (uvicorn's forwarded_allow_ips)."""


class DatabaseSection(Strict):
    url: str = DEFAULT_DATABASE_URL
    """SQLAlchemy URL: sqlite:///path (embedded default) or postgresql://user@host/db."""
    pool_size: Annotated[int, Field(ge=1, le=100)] = 5
    """Connections per replica (PostgreSQL); SQLite ignores it."""

    @field_validator("url")
    @classmethod
    def _known_backend(cls, url: str) -> str:
        return normalize_database_url(url)


class AuthSection(Strict):
    admin_token_sha256: str | None = None
    """SHA-256 (hex) of the admin token; preferred over admin_token (no secret in the file)."""
    admin_token: SecretStr | None = None
    """The admin token itself (convenient for development)."""

    @field_validator("admin_token_sha256")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", value):
            raise ValueError("must be 64 hex digits (sha256 of the token)")
        return None if value is None else value.lower()

    @field_validator("admin_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (use `cloud-sync new-admin-token`)")
        return value

    def admin_sha256(self) -> str | None:
        """The admin token's sha256 hex, from whichever key is set; None: no admin."""
        if self.admin_token_sha256 is not None:
            return self.admin_token_sha256
        if self.admin_token is not None:
            return hashlib.sha256(self.admin_token.get_secret_value().encode()).hexdigest()
        return None


class IngestSection(Strict):
    max_future_skew_s: Annotated[float, Field(gt=0, le=30 * 86_400)] = 86_400.0
    """A batch whose created_at or record timestamps lie further than this in the future
    of the server clock is refused (422), seconds."""


class FleetSection(Strict):
    stale_after_s: Annotated[float, Field(gt=0)] = 600.0
    """A device not heard from for this long shows as "stale", seconds."""
    chart_points: Annotated[int, Field(ge=2, le=1000)] = 60
    """Summaries per channel drawn in the fleet page's charts."""
    chart_channels: Annotated[int, Field(ge=1, le=32)] = 4
    """Channels charted per device (alphabetical first)."""


class ReleasesSection(Strict):
    store: Literal["folder", "database"] = "folder"
    """Where bundle archives live: "folder" (``dir``; the single-node default; replicas
    must share it) or "database" (the archives in the database every replica shares;
    ``dir`` then only caches them per replica)."""
    dir: Path | None = None
    """Bundle store root (content-addressed tar archives). Default: ``bundles`` next to
    the SQLite file, or ./bundles with PostgreSQL (share it between replicas, or use
    store = "database")."""
    public_key: Path | None = None
    """The fleet's release public key (PEM): every bundle is verified against it before
    it is stored. The same key the devices hold."""
    private_key: Path | None = None
    """The release private key (PEM, mode 0600; cloud side only): bundles published
    without a signature of this key (e.g. from training) are re-signed with it."""
    evaluate_interval_s: Annotated[float, Field(ge=0, le=86_400)] = 60.0
    """How often ``serve`` evaluates staged rollouts, seconds; 0: never (use cron and
    ``cloud-sync releases evaluate``)."""

    def store_root(self, database_url: str) -> Path:
        """The bundle store root for this database (no I/O)."""
        if self.dir is not None:
            return self.dir
        from sqlalchemy.engine import make_url

        url = make_url(database_url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            return Path(url.database).parent / "bundles"
        return Path("bundles")


TWIN_EVALUATION_PERIODS = 77
"""Held-out periods one what-if of the shipped twin needs: its 16-period window, its
60-period horizon and one more (docs/training.md, "The twin")."""


class TwinRetrainSection(Strict):
    """The cross-channel twin in ``cloud-sync retrain`` (docs/training.md, "The twin"):
    a fleet twin pretrained on every device's synced summaries from the shipped default,
    then fine-tuned per device and promoted against the twin the device runs."""

    enabled: bool = True
    """false: the retrain leaves twins alone (devices keep the shipped default)."""
    margin: Annotated[float, Field(ge=0, lt=1)] = 0.05
    """Promoted only when the candidate's what-if error (mean over 1 step, 10, 30 and 60
    min of candidate / running) is <= 1 - margin."""
    pretrain_epochs: Annotated[int, Field(ge=1, le=1000)] = 30
    """One-step epochs of the fleet pretrain (upper bound; early stopping). 30, not 5:
    only the longer pretrain learns the fleet's heat faults (docs/training.md)."""
    finetune_epochs: Annotated[int, Field(ge=1, le=1000)] = 10
    """One-step epochs of each device's fine-tune (upper bound; early stopping)."""
    rollout_epochs: Annotated[int, Field(ge=0, le=1000)] = 3
    """Epochs on the model's own 12-period roll-outs after the one-step fit, in the
    pretrain and each fine-tune (0: none)."""
    learning_rate: Annotated[float, Field(gt=0, le=1)] = 3e-4
    min_periods: Annotated[int, Field(ge=1)] = 720
    """Complete twin periods (every channel synced) a device needs (720: 12 hours at
    the shipped twin's 1-minute period); fewer: skipped with the reason."""
    holdout_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2
    """The most recent share of a device's complete periods, held out for the what-if
    comparison."""

    @model_validator(mode="after")
    def _held_out_holds_a_whatif(self) -> TwinRetrainSection:
        held = int(self.min_periods * self.holdout_fraction)
        if held < TWIN_EVALUATION_PERIODS:
            raise ValueError(
                f"min_periods {self.min_periods} x holdout_fraction {self.holdout_fraction:g}"
                f" = {held} held-out periods, fewer than the {TWIN_EVALUATION_PERIODS} one "
                "what-if of the shipped twin needs (16-period window + 60-period horizon + 1)"
                f": raise min_periods to at least "
                f"{-(-TWIN_EVALUATION_PERIODS // self.holdout_fraction):.0f} or holdout_fraction"
            )
        return self


class TrainingSection(Strict):
    """``cloud-sync retrain`` (docs/training.md)."""

    scheduler_address: str | None = None
    """Dask scheduler of an existing cluster (``tcp://host:8786``); None: an in-process
    LocalCluster of ``n_workers`` processes."""
    n_workers: Annotated[int, Field(ge=1, le=256)] = 2
    """LocalCluster worker processes (one thread each)."""
    margin: Annotated[float, Field(ge=0, lt=1)] = 0.05
    """A candidate is promoted only when its held-out MAE <= current MAE x (1 - margin)."""
    min_summaries: Annotated[int, Field(ge=1)] = 200
    """Summaries a channel needs to be trained on; a device with no such channel is
    skipped with the reason."""
    holdout_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2
    """The most recent share of each channel's series, held out for the comparison."""
    pretrain_epochs: Annotated[int, Field(ge=1, le=1000)] = 3
    finetune_epochs: Annotated[int, Field(ge=1, le=1000)] = 30
    """Upper bound; early stopping on the last 10 % of the device's training windows."""
    pretrain_learning_rate: Annotated[float, Field(gt=0, le=1)] = 1e-3
    finetune_learning_rate: Annotated[float, Field(gt=0, le=1)] = 1e-3
    weight_by_window_std: bool = True
    """Weight each fine-tune window by its std, so the loss follows the MAE in channel
    units that promotion is decided on (false: every window counts the same)."""
    finetune_from_generic: bool = True
    """Also fine-tune each device from the shipped generic model and keep whichever
    start validates better on the device's own data (twice the fine-tune time)."""
    patience: Annotated[int, Field(ge=1)] = 4
    batch_size: Annotated[int, Field(ge=1)] = 256
    pretrain_windows_per_device: Annotated[int, Field(ge=1)] = 5000
    """At most this many windows of each device go into the fleet pretrain."""
    interval_s: Annotated[float, Field(ge=60)] | None = None
    """``serve`` runs ``retrain --fleet`` every this many seconds; None: never (use cron
    or a systemd timer)."""
    reports_dir: Path = Path("training-reports")
    """Reports, candidate bundles and decisions: ``<reports_dir>/<device>/<version>/``."""
    twin: TwinRetrainSection = TwinRetrainSection()
    """The cross-channel twin's retrain (``[training.twin]``)."""


NotificationEvent = Literal["device_stale", "fleet_alarm", "rollout_stopped"]
Severity = Literal["info", "warning", "critical"]


def _warning_and_up() -> list[Severity]:
    return ["warning", "critical"]


class WebhookTarget(Strict):
    url: Annotated[str, Field(min_length=1, max_length=2048, pattern=r"^https?://[^\s]+$")]
    """Where notifications are POSTed (JSON)."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Sent with every call, e.g. an Authorization header the receiver expects."""


class NotificationsSection(Strict):
    """Webhook notifications (docs/cloud.md "Notifications"): once when a condition is
    raised and once when it clears; retried with the same Idempotency-Key until the
    receiver answers 2xx."""

    webhooks: list[WebhookTarget] = Field(default_factory=list)
    """None: no notifications (and no notification job)."""
    events: list[NotificationEvent] = Field(
        default_factory=lambda: list(get_args(NotificationEvent))
    )
    alarm_severities: list[Severity] = Field(default_factory=_warning_and_up)
    """Which fleet alarms notify."""
    check_interval_s: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)] = 30.0
    """How often ``serve`` looks for conditions and sends what is due, seconds."""
    timeout_s: Annotated[float, Field(gt=0, le=120, allow_inf_nan=False)] = 10.0
    backoff: BackoffConfig = BackoffConfig(initial_s=5.0, max_s=600.0)
    """Waits between attempts of one call that failed (edgetwin_common.retry)."""


class CloudConfig(Strict):
    server: ServerSection = ServerSection()
    database: DatabaseSection = DatabaseSection()
    auth: AuthSection = AuthSection()
    ingest: IngestSection = IngestSection()
    fleet: FleetSection = FleetSection()
    releases: ReleasesSection = ReleasesSection()
    training: TrainingSection = TrainingSection()
    notifications: NotificationsSection = NotificationsSection()
    mqtt: MqttSection = MqttSection()
    """Devices syncing through an MQTT broker (docs/mqtt.md)."""

    def with_database_url(self, url: str | None) -> CloudConfig:
        """A copy with [database] url replaced (validated); None: unchanged."""
        if url is None:
            return self
        try:
            database = DatabaseSection(url=url, pool_size=self.database.pool_size)
        except ValidationError as exc:
            data = {"url": url, "pool_size": self.database.pool_size}
            raise ConfigInvalid("--database-url", problems_from(exc, data, "database")) from None
        return self.model_copy(update={"database": database})


def normalize_database_url(url: str) -> str:
    """Map ``postgresql://`` / ``postgres://`` to the psycopg 3 driver; reject other backends.

    Raises ValueError for an unparsable URL or a backend other than SQLite or PostgreSQL.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ValueError(f"not a database URL: {exc}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.drivername not in {"sqlite", "sqlite+pysqlite"}:
            raise ValueError("SQLite URLs use the built-in driver: sqlite:///path")
        return url
    if backend in {"postgresql", "postgres"}:
        if parsed.drivername in {"postgresql", "postgres", "postgresql+psycopg"}:
            # str(URL) would mask the password with ***: render it explicitly.
            return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        raise ValueError("PostgreSQL URLs use psycopg 3: postgresql://user@host/db")
    raise ValueError(f"unsupported database {backend!r} (sqlite or postgresql)")


def parse_config(text: str, source: str = "<config>") -> CloudConfig:
    """Validate TOML text. Raises ConfigInvalid with one ConfigProblem per error."""
    return validate_toml(text, CloudConfig, source)


def load_config(path: Path | None, database_url: str | None = None) -> CloudConfig:
    """The config from ``path`` (None: all defaults), with the database URL taken from
    ``database_url``, else $CLOUD_SYNC_DATABASE_URL, else the file. Raises ConfigInvalid."""
    config = CloudConfig() if path is None else read_toml(path, CloudConfig)
    return config.with_database_url(database_url or os.environ.get(DATABASE_URL_ENV) or None)
