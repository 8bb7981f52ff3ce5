"""Idempotent topic provisioning: creates what is missing, reports drift, never deletes."""

from __future__ import annotations

from dataclasses import dataclass, field

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from topics.settings import Settings
from topics.specs import TopicSpec, topic_specs


@dataclass
class TopicStatus:
    name: str
    action: str  # created | exists | drift
    partitions: int | None = None
    drift: list[str] = field(default_factory=list)


def specs_for(settings: Settings) -> list[TopicSpec]:
    return topic_specs(
        partitions=settings.kafka.default_partitions,
        replication_factor=settings.kafka.replication_factor,
        prefix=settings.kafka.topic_prefix,
    )


def admin_client(settings: Settings, **overrides: object) -> KafkaAdminClient:
    # A broker that does not answer fails the call within connect_timeout_s, not kafka-python's 30 s.
    options = {"bootstrap_timeout_ms": int(settings.kafka.connect_timeout_s * 1000), **overrides}
    return KafkaAdminClient(**{**settings.kafka.client_options(), **options})


class BrokerUnreachable(ConnectionError):
    """No broker answered within ``kafka.connect_timeout_s``."""


def check_broker(settings: Settings) -> None:
    """Fail fast, before anything slow (model, store) starts, when the configured broker does not answer."""
    timeout_s = settings.kafka.connect_timeout_s
    try:
        admin_client(settings).close()
    except KafkaError:
        raise BrokerUnreachable(
            f"Kafka unreachable at {settings.kafka.bootstrap_servers} (no answer within {timeout_s:g} s)"
        ) from None


@dataclass
class ExistingTopic:
    partitions: int
    replication_factor: int
    configs: dict[str, str]


def describe_topics(admin: KafkaAdminClient, names: list[str]) -> dict[str, ExistingTopic]:
    """Existing topics among ``names``: partitions, replication and the configs the broker reports."""
    existing = set(admin.list_topics())
    wanted = [n for n in names if n in existing]
    if not wanted:
        return {}
    described = admin.describe_topics(wanted)
    try:
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in wanted])
        configs = configs.get("topic", {})
    except KafkaError:
        configs = {}  # some brokers do not describe configs; drift is then checked on layout only
    return {
        t["name"]: ExistingTopic(
            partitions=len(t["partitions"]),
            replication_factor=max((len(p["replica_nodes"]) for p in t["partitions"]), default=0),
            configs={k: str(v) for k, v in (configs.get(t["name"]) or {}).items()},
        )
        for t in described
    }


def drift_of(spec: TopicSpec, actual: ExistingTopic) -> list[str]:
    drift = []
    if actual.partitions != spec.partitions:
        drift.append(f"partitions {actual.partitions} (spec {spec.partitions})")
    if actual.replication_factor != spec.replication_factor:
        drift.append(f"replication {actual.replication_factor} (spec {spec.replication_factor})")
    for key, wanted in spec.configs().items():
        if key in actual.configs and actual.configs[key] != wanted:
            drift.append(f"{key} {actual.configs[key]} (spec {wanted})")
    return drift


def ensure_topics(settings: Settings, specs: list[TopicSpec] | None = None) -> list[TopicStatus]:
    specs = specs if specs is not None else specs_for(settings)
    admin = admin_client(settings)
    try:
        existing = describe_topics(admin, [s.name for s in specs])
        statuses: list[TopicStatus] = []
        missing = [s for s in specs if s.name not in existing]
        if missing:
            new = [
                NewTopic(s.name, num_partitions=s.partitions, replication_factor=s.replication_factor,
                         topic_configs=s.configs())
                for s in missing
            ]
            try:
                admin.create_topics(new, validate_only=False)
            except TopicAlreadyExistsError:
                pass  # created concurrently by another process: fine
            statuses += [TopicStatus(s.name, "created", s.partitions) for s in missing]
        for spec in specs:
            if spec.name in existing:
                actual = existing[spec.name]
                drift = drift_of(spec, actual)
                statuses.append(TopicStatus(spec.name, "drift" if drift else "exists", actual.partitions, drift))
        order = {s.name: i for i, s in enumerate(specs)}
        return sorted(statuses, key=lambda st: order[st.name])
    finally:
        admin.close()
