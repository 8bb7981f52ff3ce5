"""deploy/docker-compose.yml parses and wires what docs/deploy.md describes (no docker on the test machines)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES = COMPOSE["services"]


def test_services_and_images():
    from pipelines.stages import STAGES

    brokers = [name for name, s in SERVICES.items() if s.get("image", "").startswith("apache/kafka:")]
    assert brokers == ["kafka-1", "kafka-2", "kafka-3"]
    assert SERVICES["postgres"]["image"].startswith("postgres:")
    assert SERVICES["prefect-server"]["image"] == "prefecthq/prefect:3.8.8-python3.11"  # the pinned Prefect
    stages = {s["command"][1]: name for name, s in SERVICES.items() if (s.get("command") or [None])[0] == "consume"}
    assert set(STAGES) <= set(stages), "every registered stage runs"
    for name in [*stages.values(), "provision", "ingest", "prefect-worker"]:
        service = SERVICES[name]
        assert service["image"] == "feedback-miner:latest"
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert (ROOT / "deploy" / "Dockerfile").is_file()


def test_kraft_quorum_of_three():
    voters = None
    for i, name in enumerate(["kafka-1", "kafka-2", "kafka-3"], start=1):
        env = SERVICES[name]["environment"]
        assert env["KAFKA_NODE_ID"] == i and env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == 2 and env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == 3
        voters = voters or env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == voters == "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"])  # a base64 UUID, the same on every node
        assert f"{name}:/var/lib/kafka/data" in SERVICES[name]["volumes"]


def test_stages_reach_the_cluster_the_store_and_the_registry():
    from topics.settings import Settings

    env = SERVICES["enricher"]["environment"]
    servers = env["FEEDBACK_MINER_KAFKA__BOOTSTRAP_SERVERS"].split(",")
    assert servers == [f"kafka-{i}:9092" for i in (1, 2, 3)]
    assert env["FEEDBACK_MINER_STORE__URL"].startswith("postgresql+psycopg://") and "@postgres:5432/" in env["FEEDBACK_MINER_STORE__URL"]
    # The names are real settings (a typo would be ignored silently).
    prefixed = {k: v for k, v in env.items() if k.startswith("FEEDBACK_MINER_") and "${" not in v}
    settings = Settings(**_nested(prefixed))
    assert settings.kafka.replication_factor == 3 and settings.kafka.default_partitions == 12
    # Training promotes into the registry the enricher reads.
    registry = env["FEEDBACK_MINER_PROMOTION__REGISTRY_DIR"]
    assert f"registry:{registry}:ro" in SERVICES["enricher"]["volumes"]
    assert f"registry:{registry}" in SERVICES["prefect-worker"]["volumes"]
    assert SERVICES["provision"]["command"] == ["topics", "create"]
    assert SERVICES["normalizer"]["depends_on"]["provision"] == {"condition": "service_completed_successfully"}


def _nested(env: dict[str, str]) -> dict:
    out: dict = {}
    for key, value in env.items():
        parts = key.removeprefix("FEEDBACK_MINER_").lower().split("__")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out
