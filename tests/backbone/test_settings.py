import json

import pytest

from topics.settings import Settings


def test_environment_overrides_with_prefix_and_nesting(monkeypatch):
    monkeypatch.setenv("FEEDBACK_MINER_KAFKA__BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("FEEDBACK_MINER_RUNTIME__BATCH_SIZE", "8")
    s = Settings()
    assert s.kafka.client_options()["bootstrap_servers"] == ["k1:9092", "k2:9092"]
    assert s.runtime.batch_size == 8


def test_config_file_is_read_and_env_wins(monkeypatch, tmp_path):
    path = tmp_path / "fm.json"
    path.write_text(json.dumps({"kafka": {"topic_prefix": "prod.", "group_prefix": "fm"}, "runtime": {"batch_size": 32}}))
    monkeypatch.setenv("FEEDBACK_MINER_CONFIG", str(path))
    monkeypatch.setenv("FEEDBACK_MINER_RUNTIME__BATCH_SIZE", "4")
    s = Settings()
    assert s.topic("feedback.raw") == "prod.feedback.raw"
    assert s.group_id("normalizer") == "fm.normalizer"
    assert s.runtime.batch_size == 4


def test_sasl_ssl_options_pass_through():
    s = Settings(kafka={
        "bootstrap_servers": "k:9093", "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "u", "sasl_plain_password": "s3cr3t-pw", "ssl_cafile": "/ca.pem",
    })
    options = s.kafka.client_options()
    assert options["sasl_plain_password"] == "s3cr3t-pw"
    assert options["ssl_cafile"] == "/ca.pem"
    assert "s3cr3t-pw" not in repr(s)  # secrets stay out of logs


def test_invalid_values_are_rejected(monkeypatch):
    monkeypatch.setenv("FEEDBACK_MINER_RUNTIME__BATCH_SIZE", "0")
    with pytest.raises(ValueError):
        Settings()


def test_client_options_require_servers():
    with pytest.raises(ValueError, match="bootstrap_servers is not set"):
        Settings().kafka.client_options()
