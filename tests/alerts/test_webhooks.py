"""Webhooks against a real HTTP server on 127.0.0.1: formats, signatures, retries, failures, never blocking."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import pytest

from consumers.alerter.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookDispatcher, sign
from tests.alerts.helpers import T0
from topics.schemas import Alert, AlertKind, AlertSample, AlertStatus, Channel, Priority
from topics.settings import WebhookSettings


class Recorder:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.flaky_left = 2
        self.gate = threading.Event()
        self.gate.set()
        self.lock = threading.Lock()


@pytest.fixture
def server():
    recorder = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output quiet
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            path = urllib.parse.urlparse(self.path)
            with recorder.lock:
                recorder.requests.append({"path": path.path, "query": urllib.parse.parse_qs(path.query),
                                          "headers": dict(self.headers), "body": body})
            if path.path == "/blocked":
                recorder.gate.wait(10)
            status, answer = 200, b'{"ok": true}'
            if path.path == "/fail":
                status, answer = 500, b"boom"
            elif path.path == "/flaky":
                with recorder.lock:
                    if recorder.flaky_left > 0:
                        recorder.flaky_left -= 1
                        status, answer = 503, b"try later"
            elif path.path == "/robot-error":
                answer = json.dumps({"errcode": 310000, "errmsg": "sign not match"}).encode()
            elif path.path in ("/dingtalk", "/wecom"):
                answer = b'{"errcode": 0, "errmsg": "ok"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield base, recorder
    recorder.gate.set()
    httpd.shutdown()
    httpd.server_close()


def _alert(priority: Priority = Priority.P1, revision: int = 0) -> Alert:
    return Alert(
        alert_id="a1", revision=revision, priority=priority, kind=AlertKind.message, key="customer:c-1",
        status=AlertStatus.open, title="人身安全风险: 产品质量 · 应用评价", summary="客户 c-1: 充电宝起火了",
        reasons=["人身安全: 起火"], count=1, total_count=1,
        samples=[AlertSample(event_id="e1", quote="充电宝起火了", channel=Channel.app, received_at=T0)],
        first_seen=T0, last_seen=T0, emitted_at=T0,
    )


def _dispatcher(hooks, **options) -> WebhookDispatcher:
    options = {"max_attempts": 3, "backoff_s": 0.05, "backoff_max_s": 0.2, "clock": lambda: 1_700_000_000.0, **options}
    return WebhookDispatcher(hooks, **options)


def test_generic_json_is_signed_with_hmac_sha256(server) -> None:
    base, recorder = server
    dispatcher = _dispatcher([WebhookSettings(url=f"{base}/generic", secret="s3cret")])
    dispatcher(_alert())
    assert dispatcher.drain(10)
    dispatcher.close()
    (request,) = recorder.requests
    body, headers = request["body"], request["headers"]
    assert Alert.model_validate_json(body).alert_id == "a1"
    timestamp = headers[TIMESTAMP_HEADER]
    expected = hmac.new(b"s3cret", timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == f"sha256={expected}" == f"sha256={sign('s3cret', timestamp, body)}"
    assert dispatcher.stats.sent == 1 and dispatcher.stats.failed == 0


def test_dingtalk_wecom_and_slack_formats(server) -> None:
    base, recorder = server
    hooks = [
        WebhookSettings(url=f"{base}/dingtalk?access_token=t", format="dingtalk", secret="SECabc"),
        WebhookSettings(url=f"{base}/wecom", format="wecom"),
        WebhookSettings(url=f"{base}/slack", format="slack"),
    ]
    dispatcher = _dispatcher(hooks)
    dispatcher(_alert())
    assert dispatcher.drain(10)
    dispatcher.close()
    by_path = {r["path"]: r for r in recorder.requests}
    ding = by_path["/dingtalk"]
    payload = json.loads(ding["body"])
    assert payload["msgtype"] == "markdown" and "[P1] 人身安全风险" in payload["markdown"]["title"]
    assert "充电宝起火了" in payload["markdown"]["text"]
    timestamp = ding["query"]["timestamp"][0]
    digest = hmac.new(b"SECabc", f"{timestamp}\nSECabc".encode(), hashlib.sha256).digest()
    assert ding["query"]["sign"][0] == base64.b64encode(digest).decode() and ding["query"]["access_token"] == ["t"]
    wecom = json.loads(by_path["/wecom"]["body"])
    assert wecom["msgtype"] == "markdown" and '<font color="warning">' in wecom["markdown"]["content"]
    slack = json.loads(by_path["/slack"]["body"])
    assert slack["text"].startswith("[P1]") and "*[P1]" in slack["attachments"][0]["blocks"][0]["text"]["text"]
    assert dispatcher.stats.sent == 3


def test_robot_texts_carry_the_state_and_the_acknowledgement_in_local_time(server) -> None:
    base, recorder = server
    hooks = [WebhookSettings(url=f"{base}/dingtalk", format="dingtalk"), WebhookSettings(url=f"{base}/wecom", format="wecom")]
    dispatcher = _dispatcher(hooks)
    fresh = _alert()
    acked = _alert(revision=1).model_copy(update={
        "status": AlertStatus.update, "acknowledged_by": "alice", "acknowledged_at": T0, "ack_note": "查看中"})
    dispatcher(fresh)
    assert dispatcher.drain(10)
    dispatcher(acked)
    assert dispatcher.drain(10)
    dispatcher.close()
    texts = [json.loads(r["body"])["markdown"] for r in recorder.requests]
    texts = [t.get("text") or t.get("content") for t in texts]
    assert all("状态: 新告警 · 未确认" in t for t in texts[:2]), texts
    local_t0 = T0.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M")
    for text in texts[2:]:
        assert f"状态: 更新 · 已确认: alice {local_t0} +08:00 · 查看中" in text, text
        assert "+08:00" in text.split("时间 ")[1]


def test_retries_with_backoff_then_succeeds(server) -> None:
    base, recorder = server
    dispatcher = _dispatcher([WebhookSettings(url=f"{base}/flaky")])
    dispatcher(_alert())
    assert dispatcher.drain(10)
    dispatcher.close()
    assert len(recorder.requests) == 3
    assert (dispatcher.stats.sent, dispatcher.stats.retried, dispatcher.stats.failed) == (1, 2, 0)


def test_failing_endpoints_are_recorded_and_do_not_stop_other_deliveries(server, caplog) -> None:
    base, recorder = server
    hooks = [
        WebhookSettings(url=f"{base}/fail"),
        WebhookSettings(url=f"{base}/robot-error", format="dingtalk"),
        WebhookSettings(url="http://127.0.0.1:1/refused"),
        WebhookSettings(url=f"{base}/ok"),
    ]
    dispatcher = _dispatcher(hooks)
    with caplog.at_level("ERROR", logger="consumers.alerter.webhooks"):
        dispatcher(_alert())
        assert dispatcher.drain(20)
    dispatcher.close()
    assert dispatcher.stats.sent == 1 and dispatcher.stats.failed == 3
    assert sum(1 for r in recorder.requests if r["path"] == "/fail") == 3  # max_attempts
    errors = {url: error for url, _, error in dispatcher.stats.failures}
    assert "HTTP 500" in errors[f"{base}/fail"] and "errcode 310000" in errors[f"{base}/robot-error"]
    assert "ConnectError" in errors["http://127.0.0.1:1/refused"]
    assert sum("failed alert a1" in record.message for record in caplog.records) == 3
    from prometheus_client import REGISTRY

    assert REGISTRY.get_sample_value("feedback_miner_webhook_deliveries_total", {"format": "generic", "outcome": "failed"}) >= 2


def test_priority_filter(server) -> None:
    base, recorder = server
    dispatcher = _dispatcher([WebhookSettings(url=f"{base}/ok", min_priority="P1")])
    dispatcher(_alert(Priority.P3))
    dispatcher(_alert(Priority.P1))
    assert dispatcher.drain(10)
    dispatcher.close()
    assert [Alert.model_validate_json(r["body"]).priority for r in recorder.requests] == [Priority.P1]


def test_a_stuck_endpoint_never_blocks_the_caller_and_a_full_queue_drops(server) -> None:
    base, recorder = server
    recorder.gate.clear()  # the endpoint hangs until released
    dispatcher = _dispatcher([WebhookSettings(url=f"{base}/blocked", timeout_s=10)], queue_size=1)
    for revision in range(4):
        dispatcher(_alert(revision=revision))  # returns at once although nothing can be delivered
    # One delivery in flight, one queued, the rest dropped and recorded.
    assert dispatcher.stats.dropped >= 2 and dispatcher.stats.sent == 0
    assert any(error == "queue full" for _, _, error in dispatcher.stats.failures)
    recorder.gate.set()
    assert dispatcher.drain(15)
    dispatcher.close()
    assert dispatcher.stats.sent + dispatcher.stats.dropped == 4
