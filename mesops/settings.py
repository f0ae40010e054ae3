"""The one settings object of mesops: every path, URL, key and threshold, from MESOPS_* environment variables."""

from __future__ import annotations

import os
import secrets
from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# Switches that keep every library from phoning home (see ../shared/STACK.md). Set by the project, not the user.
TELEMETRY_OFF: dict[str, str] = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "BENTOML_DO_NOT_TRACK": "true",
    "DO_NOT_TRACK": "1",
    "GX_ANALYTICS_ENABLED": "False",
    "DAGSTER_DISABLE_TELEMETRY": "true",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}


class Settings(BaseSettings):
    """Configuration of a mesops installation. Build it with :func:`get_settings`; never read env vars elsewhere."""

    model_config = SettingsConfigDict(env_prefix="MESOPS_", extra="ignore")

    home: Path = Field(
        default=Path(".mesops"),
        description="Folder holding all embedded state (data zones, databases, keys).",
    )
    database_url: str | None = Field(
        default=None,
        description="Platform database URL; default is a SQLite file under MESOPS_HOME. "
        "PostgreSQL: postgresql+psycopg2://user@host:5432/db",
    )
    dagster_postgres_url: str | None = Field(
        default=None,
        description="When set, the Dagster instance keeps its runs, events and schedules in this PostgreSQL "
        "database instead of SQLite under MESOPS_HOME.",
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking and registry store; default sqlite:///<MESOPS_HOME>/mlflow/mlflow.db. "
        "Production: an MLflow server or postgresql+psycopg2://… URL.",
    )
    mlflow_artifact_location: str | None = Field(
        default=None,
        description="Where MLflow keeps run artifacts (models, reports); default <MESOPS_HOME>/mlflow/artifacts.",
    )
    pseudonym_key: SecretStr | None = Field(
        default=None,
        description="Secret for keyed pseudonyms (HMAC-SHA256). When unset, a random key is created once in "
        "MESOPS_HOME/secrets/ (outside every data zone) and reused.",
    )
    ner_model_path: Path | None = Field(
        default=None,
        description="Path to an installed spaCy NER model for free-text anonymization (from an approved "
        "channel). Default: a blank pipeline plus roster, pattern and context recognizers; nothing is downloaded.",
    )
    anonymization_policy_version: str = Field(
        default="1.0.0", description="Version of the anonymization policy recorded in every attestation."
    )
    contracts_dir: Path | None = Field(
        default=None,
        description="Folder of data contract YAML files; default: the contracts shipped with mesops.",
    )
    opcenter_url: str | None = Field(
        default=None,
        description="Base URL of an Opcenter OData v4 endpoint to pull extracts from (the pull_opcenter job); "
        "unset: extracts arrive as dropped files only.",
    )
    opcenter_pull_cron: str | None = Field(
        default=None,
        description="Cron schedule of the pull_opcenter job, e.g. '0 * * * *'; unset: no schedule.",
    )
    odata_page_size: int = Field(
        default=5000, ge=1, description="Rows per page requested from an OData endpoint."
    )
    http_timeout_s: float = Field(default=30.0, gt=0, description="Timeout of HTTP calls to MES endpoints.")
    max_quarantine_share: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="Largest share of a table's landed rows that may be quarantined before the blocking "
        "contract check stops everything downstream of it.",
    )
    dagster_executor: str = Field(
        default="in_process",
        pattern="^(in_process|multiprocess)$",
        description="How Dagster runs the steps of a job: in_process (one machine, lowest overhead) or "
        "multiprocess (one process per step).",
    )
    sensor_interval_s: int = Field(
        default=30,
        ge=5,
        description="How often the Dagster sensor looks for new files in the landing folder.",
    )
    serving_host: str = Field(default="127.0.0.1", description="Interface the prediction service listens on.")
    serving_port: int = Field(default=3000, ge=1, le=65535, description="Port of the prediction service.")
    serving_workers: int = Field(
        default=1, ge=1, description="Worker processes of the prediction service (one per core at most)."
    )
    serving_url: str | None = Field(
        default=None,
        description="Base URL clients (the demo, the CLI) use to reach the service; "
        "default http://<serving_host>:<serving_port>.",
    )
    serving_refresh_s: float = Field(
        default=2.0,
        gt=0,
        description="How often the service re-reads rollout phases, model aliases and API keys: a promotion, "
        "rollback, phase change or key revocation is in effect within this many seconds plus the model "
        "load time, without a restart.",
    )
    serving_access_log: bool = Field(
        default=False, description="Log one line per HTTP request (costs ~0.1 ms per request)."
    )
    serving_max_body_bytes: int = Field(
        default=2 * 2**20,
        ge=1024,
        description="Largest request body the service takes: a larger one is a 413, refused unread when its "
        "Content-Length says so, else as soon as this many bytes have arrived (the largest valid request, a "
        "batch of 500 with every feature, is about 0.9 MB).",
    )
    prediction_log_batch_rows: int = Field(
        default=500,
        ge=1,
        description="Prediction log rows written per database transaction (off the request path).",
    )
    prediction_log_flush_s: float = Field(
        default=0.2,
        gt=0,
        description="Longest time a prediction log row waits before it is written; a crash of the service "
        "loses at most the rows of this window (and of one batch being written).",
    )
    prediction_log_max_pending: int = Field(
        default=20_000,
        ge=1,
        description="Rows that may wait for the database; beyond it requests get 503 instead of being "
        "answered without a log row.",
    )
    drift_reference_rows: int = Field(
        default=5_000,
        ge=100,
        description="Training rows kept with each registered version as its drift reference (a seeded sample "
        "of the exact training features).",
    )
    monitoring_window_days: float = Field(
        default=7.0,
        gt=0,
        description="Served traffic the drift report and the gate signals look at: the last this many days of "
        "the challenger's current phase (or of the champion when there is no challenger).",
    )
    monitoring_cron: str = Field(
        default="0 * * * *",
        pattern=r"^(@(hourly|daily|weekly|monthly)|\S+( +\S+){4})$",
        description="Cron schedule of the Dagster monitor job (drift report, signals and gate of every model; "
        "the gate's verdict is carried out). Five cron fields or @hourly/@daily/@weekly/@monthly; the "
        "schedule is running from the start.",
    )
    monitoring_feedback_min: int = Field(
        default=50,
        ge=1,
        description="New planner decisions plus outcomes (all models) that make the feedback sensor start a "
        "monitor run before the schedule would.",
    )
    bridge_amqp_url: str = Field(
        default="amqp://guest:guest@127.0.0.1:5672/%2F",
        description="RabbitMQ the MES event bridge (mesops bridge) consumes from and publishes write-backs to.",
    )
    bridge_events_exchange: str = Field(
        default="mesops.events",
        description="Durable topic exchange MES events are published to (routing key <source>.<event type>).",
    )
    bridge_events_queue: str = Field(
        default="mesops.events.in", description="Durable queue the bridge consumes (bound to every event)."
    )
    bridge_writeback_exchange: str = Field(
        default="mesops.writeback",
        description="Durable topic exchange the bridge publishes write-backs to (routing key <source>.<kind>).",
    )
    bridge_writeback_queue: str = Field(
        default="mesops.writeback.out",
        description="Durable queue bound to every write-back, so none is dropped while no MES adapter listens.",
    )
    bridge_dead_letter_exchange: str = Field(
        default="mesops.events.dead",
        description="Durable exchange of events the bridge cannot process (reasons in the message headers).",
    )
    bridge_dead_letter_queue: str = Field(
        default="mesops.events.dead", description="Durable queue holding the dead-lettered events."
    )
    bridge_prefetch: int = Field(
        default=100,
        ge=1,
        description="Unacknowledged events RabbitMQ hands a bridge worker at a time (about two groups, so the "
        "next group is already there while one is processed).",
    )
    bridge_max_event_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        description="Largest event body the bridge reads; a larger one is dead-lettered unread (events are a "
        "few hundred bytes: megabytes are a sender's mistake, never worth a worker's memory).",
    )
    bridge_batch_max: int = Field(
        default=50,
        ge=1,
        description="Most events a bridge worker processes as one group (one feature build, one commit wait, "
        "one ledger transaction, one acknowledgement).",
    )
    bridge_batch_wait_s: float = Field(
        default=0.005,
        ge=0,
        description="How long the bridge waits for a next event before processing the group it holds (the "
        "most a lone event is delayed by grouping).",
    )
    bridge_max_attempts: int = Field(
        default=5,
        ge=1,
        description="Tries of an event that fails for a transient reason (database away, log writer "
        "overloaded) before it is dead-lettered with that reason.",
    )
    bridge_retry_delay_s: float = Field(
        default=1.0, ge=0, description="Pause before an event that failed for a transient reason is retried."
    )
    bridge_commit_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Longest wait for an event's prediction log row to commit before the try counts as failed.",
    )
    bridge_reconnect_delay_s: float = Field(
        default=0.5,
        gt=0,
        description="First pause before the bridge reconnects to a lost RabbitMQ; doubled on each failed try.",
    )
    bridge_reconnect_delay_max_s: float = Field(
        default=5.0, gt=0, description="Longest pause between two reconnection tries of the bridge."
    )
    bridge_reconnect_timeout_s: float = Field(
        default=300.0,
        gt=0,
        description="How long the bridge keeps trying to reach a lost RabbitMQ before it gives up and exits "
        "(non-zero, for the supervisor to restart it).",
    )
    bridge_mqtt_host: str = Field(default="127.0.0.1", description="Mosquitto (MQTT) host of the bridge.")
    bridge_mqtt_port: int = Field(default=1883, ge=1, le=65535, description="Mosquitto (MQTT) port.")
    bridge_mqtt_topic: str = Field(
        default="mesops/events/#", description="MQTT topic filter the bridge subscribes to (QoS 1)."
    )
    bridge_mqtt_client_id: str = Field(
        default="mesops-bridge",
        description="MQTT client id of the bridge: its persistent session keeps unacknowledged events for it.",
    )
    bridge_mqtt_writeback_prefix: str = Field(
        default="mesops/writeback", description="Write-backs go to <prefix>/<source>/<kind> (QoS 1)."
    )
    bridge_mqtt_dead_letter_topic: str = Field(
        default="mesops/dead-letters",
        description="Topic of events the bridge cannot process (JSON with reasons and the original body).",
    )
    up_replicas: int = Field(default=2, ge=1, description="`mesops up`: prediction service replicas.")
    up_postgres_url: str = Field(
        default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres",
        description="`mesops up`: the PostgreSQL server its databases are created on when absent.",
    )
    up_database_prefix: str = Field(
        default="mesops", description="`mesops up`: prefix of its databases (<prefix>, <prefix>_mlflow, ...)."
    )
    up_dagster_port: int = Field(
        default=3070, ge=1, le=65535, description="`mesops up`: port of the Dagster webserver."
    )
    up_bridge_workers: int = Field(default=0, ge=0, description="`mesops up`: event bridge workers.")
    policies_dir: Path | None = Field(
        default=None,
        description="Folder of the phase policy YAML files; default: the policies shipped with mesops "
        "(governance/policies).",
    )

    # --- data zones, all under home -------------------------------------------------------------
    @property
    def landing_dir(self) -> Path:
        """Raw extracts as they arrived. The only zone allowed to hold personal data."""
        return self.home / "landing"

    @property
    def anonymized_dir(self) -> Path:
        """Tables after anonymization (pseudonyms and redacted text), before contract validation."""
        return self.home / "anonymized"

    @property
    def curated_dir(self) -> Path:
        """Contract-valid, typed tables that models train on."""
        return self.home / "curated"

    @property
    def quarantine_dir(self) -> Path:
        """Rows that failed a contract, with their reasons."""
        return self.home / "quarantine"

    @property
    def attestations_dir(self) -> Path:
        """Anonymization attestations, one JSON document per table and batch."""
        return self.home / "attestations"

    @property
    def secrets_dir(self) -> Path:
        return self.home / "secrets"

    @property
    def cache_dir(self) -> Path:
        """Rebuildable caches (the blank spaCy pipeline the anonymizer loads by path)."""
        return self.home / "cache"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def reports_dir(self) -> Path:
        """Drift reports and governance reports (HTML and JSON); no personal data."""
        return self.home / "reports"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'platform.db').resolve()}"

    @property
    def resolved_contracts_dir(self) -> Path:
        if self.contracts_dir:
            return self.contracts_dir
        return Path(__file__).resolve().parent.parent / "data_contracts" / "contracts"

    @property
    def resolved_serving_url(self) -> str:
        return self.serving_url or f"http://{self.serving_host}:{self.serving_port}"

    @property
    def resolved_policies_dir(self) -> Path:
        if self.policies_dir:
            return self.policies_dir
        return Path(__file__).resolve().parent.parent / "governance" / "policies"

    @cached_property
    def pseudonym_secret(self) -> bytes:
        """The HMAC key for pseudonyms: from MESOPS_PSEUDONYM_KEY, else a key file created once."""
        if self.pseudonym_key is not None:
            value = self.pseudonym_key.get_secret_value()
            if not value:
                raise ValueError("MESOPS_PSEUDONYM_KEY is set but empty: give it a secret of 16+ characters")
            return value.encode()
        key_file = self.secrets_dir / "pseudonym.key"
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            key_file.write_text(secrets.token_hex(32))
            key_file.chmod(0o600)
        return key_file.read_text().strip().encode()

    def ensure_dirs(self) -> None:
        """Create the state folders (called by commands that write, never at import)."""
        for folder in (
            self.landing_dir,
            self.anonymized_dir,
            self.curated_dir,
            self.quarantine_dir,
            self.attestations_dir,
            self.dagster_home,
            self.logs_dir,
        ):
            folder.mkdir(parents=True, exist_ok=True)


def disable_telemetry() -> None:
    """Turn off every library's calls home for this process and its children."""
    for name, value in TELEMETRY_OFF.items():
        os.environ[name] = value


def get_settings(**overrides: object) -> Settings:
    """Build the settings from the environment (plus explicit overrides) and switch telemetry off."""
    disable_telemetry()
    settings = Settings(**overrides)  # type: ignore[arg-type]
    settings.home = settings.home.resolve()
    return settings
