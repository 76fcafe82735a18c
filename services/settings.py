"""One settings object per process, read from ``FLYWHEEL_*`` environment variables."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, get_args

from pydantic import Field, SecretStr, StringConstraints, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.errors import ServiceError

ENV_PREFIX = "FLYWHEEL_"
# A value that must say something: an empty FLYWHEEL_API_HOST would bind every interface.
NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class SettingsError(ServiceError):
    """A setting's environment variable holds a value Flywheel cannot use."""


class Settings(BaseSettings):
    """Every setting Flywheel reads. The README lists them; change them via the environment.

    Invalid values raise SettingsError with a one-line message that names each bad variable
    as the user sets it (``FLYWHEEL_API_PORT``, not ``api_port``) and what it should hold."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="ignore", allow_inf_nan=False
    )

    home: Path = Field(
        default=Path(".flywheel"),
        description="Directory holding every byte of data: DuckDB file, spool, adapters, logs.",
    )
    kafka_bootstrap: NonEmpty | None = Field(
        default=None,
        description="host:port[,host:port] of your Kafka cluster; unset starts the bundled broker.",
    )
    embedded_broker_port: int = Field(
        default=19092, ge=1, le=65535, description="Port of the bundled broker on 127.0.0.1."
    )
    partitions: int = Field(
        default=4, ge=1, le=256, description="Partitions of each topic created at start-up."
    )
    replication_factor: int = Field(
        default=1, ge=1, le=16, description="Replication factor of each topic created at start-up."
    )
    consumer_group: NonEmpty = Field(
        default="flywheel-ingest", description="Consumer group of the control plane's ingest."
    )
    api_host: NonEmpty = Field(default="127.0.0.1", description="Address the HTTP API binds.")
    api_port: int = Field(default=8000, ge=1, le=65535, description="Port of the HTTP API.")
    max_body_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, description="Largest HTTP request body accepted."
    )
    max_batch_events: int = Field(
        default=1000, ge=1, le=100_000, description="Most events in one POST /v1/events."
    )
    ingest_max_records: int = Field(
        default=10_000, ge=1, description="Most events the ingest writes to DuckDB in one batch."
    )
    ingest_max_wait_ms: int = Field(
        default=100, ge=1, description="Longest the ingest waits to fill a batch (latency bound)."
    )
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")
    base_model: str | None = Field(
        default=None,
        description="A local Hugging Face model directory; unset uses the bundled "
        "SmolLM2-135M-Instruct, converted once into FLYWHEEL_HOME/models.",
    )
    scheduler_interval_s: float = Field(
        default=15.0, gt=0, description="How often the scheduler checks the tasks' triggers."
    )
    gc_interval_s: float = Field(
        default=3600.0,
        gt=0,
        description="How often the scheduler deletes expired raw events and unneeded adapters.",
    )
    cycle_lease_s: float = Field(
        default=120.0, gt=5, description="A cycle whose runner is silent this long is failed."
    )
    cycle_timeout_s: float = Field(
        default=10_800.0,
        gt=0,
        description="Longest a training+evaluation run may take. A hung worker is caught "
        "sooner by the lease; this stops a run that keeps working: a first cycle with its "
        "search on long inputs took over an hour on a busy 2-core CPU.",
    )

    training: str = Field(
        default="local",
        description="local: cycles train in a child process; remote: they are queued in the "
        "shared store for `flywheel train --watch` on a GPU machine.",
    )
    serve_host: NonEmpty = Field(default="127.0.0.1", description="Address `flywheel serve` binds.")
    serve_port: int = Field(
        default=8001, ge=1, le=65535, description="Port of the inference server."
    )
    control_plane_url: str | None = Field(
        default=None,
        description="Where inference servers find the control plane; unset: "
        "http://FLYWHEEL_API_HOST:FLYWHEEL_API_PORT.",
    )
    server_token: SecretStr | None = Field(
        default=None,
        description="Token (role server) an inference server uses to read tasks and report alerts; "
        "unset: the local control plane's own token file under FLYWHEEL_HOME/run.",
    )
    serve_max_new_tokens: int = Field(
        default=64, ge=1, le=1024, description="Longest answer of a text task, in tokens."
    )
    review_lease_s: float = Field(
        default=300.0, gt=0, description="How long a review item stays with one reviewer."
    )
    review_low_confidence: float = Field(
        default=-0.7,
        description="Answers whose mean token log-probability is below this are reviewed "
        "before the random calibration sample (-0.7 is about 50% probability per token).",
    )

    auth_max_failures: int = Field(
        default=20, ge=1, description="Unknown tokens a client may send per window before 429."
    )
    auth_failure_window_s: float = Field(
        default=60.0, gt=0, description="The window of FLYWHEEL_AUTH_MAX_FAILURES, in seconds."
    )
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Comma-separated addresses or networks of reverse proxies whose "
        "X-Forwarded-For names the client (for the rate limit); empty: trust no one's.",
    )

    live_monitor: bool = Field(
        default=True,
        description="Run the live monitor (canaries, drift watch) with the control plane.",
    )
    live_window_s: int = Field(
        default=60, ge=1, le=86_400, description="Length of the live monitor's tumbling windows."
    )
    live_publish_interval_s: float = Field(
        default=1.0, gt=0, le=60, description="How often the monitor publishes changed windows."
    )
    live_check_interval_s: float = Field(
        default=2.0, gt=0, le=600, description="How often the control plane decides on canaries."
    )
    alert_webhook_url: SecretStr | None = Field(
        default=None,
        description="URL that receives each drift alert as a JSON POST; unset: no webhook. "
        "A secret (hooks carry theirs in the URL): only its scheme and host are logged.",
    )

    vllm_urls: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Comma-separated base URLs of vLLM replicas (http://host:8000). Set: the "
        "control plane keeps each serving every task's champion and canary, and "
        "`flywheel serve --backend vllm` forwards to them; empty: no vLLM.",
    )
    vllm_adapters_dir: str | None = Field(
        default=None,
        description="The adapter store's path as the vLLM replicas see it (where they mount "
        "FLYWHEEL_HOME/adapters); unset: the same path as here.",
    )
    vllm_api_key: SecretStr | None = Field(
        default=None, description="The replicas' --api-key, if they were started with one."
    )
    vllm_timeout_s: float = Field(
        default=120.0,
        gt=0,
        le=3600,
        description="Longest a vLLM replica may take over one answer before the gateway "
        "tries the next replica.",
    )
    vllm_grace_s: float = Field(
        default=60.0,
        ge=0,
        le=86_400,
        description="How long a version routed nowhere stays loaded on the replicas.",
    )
    vllm_poll_s: float = Field(
        default=2.0,
        gt=0,
        le=600,
        description="How often the control plane checks what each replica serves.",
    )

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise SettingsError(describe(error)) from None

    @field_validator("training")
    @classmethod
    def _known_mode(cls, value: str) -> str:
        if value not in ("local", "remote"):
            raise ValueError("set FLYWHEEL_TRAINING to local or remote")
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_networks(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or network (like 10.0.0.5 or 10.0.0.0/24)"
                ) from None
        return tuple(entries)

    @field_validator("vllm_urls", mode="before")
    @classmethod
    def _replica_urls(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        urls = tuple(url.strip().rstrip("/") for url in value.split(",") if url.strip())
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http(s) URL (like http://vllm-0:8000)")
        return urls

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("set FLYWHEEL_LOG_LEVEL to DEBUG, INFO, WARNING or ERROR")
        return value

    @property
    def db_path(self) -> Path:
        return self.home / "flywheel.duckdb"

    @property
    def spool_dir(self) -> Path:
        return self.home / "spool"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def adapters_dir(self) -> Path:
        return self.home / "adapters"

    @property
    def snapshots_dir(self) -> Path:
        return self.home / "snapshots"

    @property
    def cycles_dir(self) -> Path:
        return self.home / "cycles"

    @property
    def api_url(self) -> str:
        return self.control_plane_url or f"http://{self.api_host}:{self.api_port}"

    @property
    def bootstrap(self) -> str:
        """Where Kafka clients connect: the configured cluster or the bundled broker."""
        return self.kafka_bootstrap or f"127.0.0.1:{self.embedded_broker_port}"


def describe(error: ValidationError) -> str:
    """One line naming each bad environment variable, the value it holds (never a secret's)
    and what to set it to: pydantic names fields, but users set variables."""
    problems = []
    for detail in error.errors(include_url=False):
        field = str(detail["loc"][0]) if detail["loc"] else ""
        variable = f"{ENV_PREFIX}{field.upper()}"
        info = Settings.model_fields.get(field)
        secret = info is not None and SecretStr in (info.annotation, *get_args(info.annotation))
        shown = "" if secret else f"={detail['input']!r}"
        reason = str(detail["msg"]).removeprefix("Value error, ")
        hint = f" ({info.description})" if info is not None and info.description else ""
        problems.append(f"{variable}{shown}: {reason}{hint}")
    return "; ".join(problems)
