"""End to end on the real broker: `serve ingest` (uvicorn, a real port) and `publish --channel email`
→ feedback.raw → the normalizer stage (StreamRuntime, store-backed dedup) → feedback.normalized / deadletter."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from consumers.kafka_io import read_topic
from consumers.runtime import StreamRuntime
from pipelines.stages import build_stage
from topics.embedded import free_port
from topics.schemas import DeadLetter, NormalizedFeedback
from topics.serde import decode

pytestmark = pytest.mark.broker

FIXTURES = Path(__file__).parent / "fixtures"
TOKEN = "integration-token"


def cli_env(settings, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "FEEDBACK_MINER_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "FEEDBACK_MINER_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "FEEDBACK_MINER_KAFKA__GROUP_PREFIX": settings.kafka.group_prefix,
        **extra,
    }


def event(event_id: str, channel: str, payload: dict, customer: str = "c1") -> dict:
    return {
        "event_id": event_id,
        "channel": channel,
        "source": "integration",
        "received_at": "2026-11-16T09:00:00+08:00",
        "customer": {"id": customer},
        "payload": payload,
    }


def mime(name: str) -> str:
    return base64.b64encode((FIXTURES / name).read_bytes()).decode()


@pytest.fixture
def ingest_server(kafka_settings):
    port = free_port()
    env = cli_env(kafka_settings, FEEDBACK_MINER_CHANNELS__INGEST__TOKENS=f'["{TOKEN}"]', FEEDBACK_MINER_CHANNELS__INGEST__PORT=str(port))
    server = subprocess.Popen([sys.executable, "-m", "pipelines", "serve", "ingest"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"ingest server did not become ready: {server.stdout.read().decode()[-2000:] if server.poll() is not None else 'timeout'}")
            time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_http_and_email_ingest_through_the_normalizer(kafka_settings, ingest_server) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    complaint = "外卖送了一个半小时才到，饭菜全凉了，骑手还不接电话，太差了。"
    batch = [
        event("h-mail-gbk", "email", {"mime_base64": mime("gbk_quoted_reply.eml")}),
        event("h-social", "social", {"text": "轉發微博//@小明:退款兩週了還沒到賬[怒]，電話13912345678//@消費者之聲:某某外賣退款遲遲不到賬", "platform": "weibo"}, "c2"),
        event("h-app", "app", {"text": complaint, "rating": 1, "app_version": "8.4.0"}, "c3"),
        event("h-app-dup", "app", {"text": complaint.replace("太差了", "太差劲了"), "rating": 1}, "c4"),
        event("h-broken", "email", {"mime_base64": mime("broken_multipart.eml")}, "c5"),
    ]
    response = httpx.post(f"{ingest_server}/v1/feedback", json=batch, headers=auth, timeout=30)
    assert response.status_code == 202, response.text
    assert response.json()["event_ids"] == [e["event_id"] for e in batch]
    assert httpx.post(f"{ingest_server}/v1/feedback", json=batch[0], timeout=30).status_code == 401

    published = subprocess.run(
        [sys.executable, "-m", "pipelines", "publish", "--channel", "email", str(FIXTURES / "two_messages.mbox")],
        env=cli_env(kafka_settings), capture_output=True, timeout=120,
    )
    assert published.returncode == 0, published.stderr.decode()
    assert "2 accepted" in published.stdout.decode()

    runtime = StreamRuntime(build_stage("normalizer", kafka_settings), kafka_settings)
    stats = runtime.run(max_messages=7, idle_exit_s=15)
    assert (stats.processed, stats.produced, stats.dead_lettered) == (7, 6, 1)

    normalized = {e.event_id: e for e in (decode(NormalizedFeedback, r.value) for r in read_topic(kafka_settings, "feedback.normalized"))}
    assert normalized["h-mail-gbk"].text == "你好,我叫王堃,上周买的空气净化器用了三天就坏了,镕记门店也不给换。\n请尽快联系我:[手机号]。"
    assert normalized["h-mail-gbk"].pii == {"phone": 1}
    social = normalized["h-social"]
    assert social.text == "退款两周了还没到账,电话[手机号]"
    assert social.signals["repost_of"]["author"] == "消費者之聲" and social.signals["repost_of"]["text"] == "某某外卖退款迟迟不到账"
    assert normalized["h-app-dup"].duplicate_of == "h-app" and normalized["h-app"].duplicate_of is None
    mbox_texts = sorted(e.text for e in normalized.values() if e.customer.id.startswith("pid_"))
    assert mbox_texts == ["商品和描述不符,申请退货。", "快递三天没更新了,请帮忙查一下。"]
    raw_numbers = ("13912345678", "138 1234 5678")
    for record in read_topic(kafka_settings, "feedback.normalized"):
        assert not any(number in record.value.decode() for number in raw_numbers)

    [dead] = [decode(DeadLetter, r.value) for r in read_topic(kafka_settings, "feedback.deadletter")]
    assert (dead.reason.value, dead.event_id) == ("decode_failed", "h-broken")
    assert b"broken_multipart" not in dead.original_bytes() and b'"h-broken"' in dead.original_bytes()
