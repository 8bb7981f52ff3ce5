"""Alert webhooks: generic signed JSON, DingTalk, WeCom and Slack, delivered off the stage's thread.

``WebhookDispatcher`` is an alert sink: calling it only puts the alert on a
bounded queue (a full queue drops and records it), so the stage never waits
for a slow or dead endpoint. One worker thread sends, retrying failures with
exponential backoff (without holding up other deliveries); every final
failure is logged, counted in ``stats`` and in a Prometheus counter.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import heapq
import hmac
import itertools
import json
import logging
import queue
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from prometheus_client import Counter

from consumers.alerter.display import STATUS_ZH, span, state_text
from topics.schemas import Alert, Priority
from topics.settings import WebhookSettings

log = logging.getLogger(__name__)

DELIVERIES = Counter(
    "feedback_miner_webhook_deliveries_total", "Alert webhook deliveries by outcome", ["format", "outcome"]
)

SIGNATURE_HEADER = "X-Feedback-Miner-Signature"
TIMESTAMP_HEADER = "X-Feedback-Miner-Timestamp"
COLOUR = {"P1": "#d00000", "P2": "#e85d04", "P3": "#f4a261", "P4": "#6c757d"}


class DeliveryError(RuntimeError):
    pass


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The generic format's signature: HMAC-SHA256 over ``timestamp.body``, hex."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _markdown(alert: Alert, tz: str | None = None) -> str:
    lines = [
        f"**[{alert.priority.value}] {alert.title}** ({STATUS_ZH[alert.status]})",
        "",
        alert.summary,
        "",
        # The acknowledgement has its own line (状态) below.
        *(f"- {reason}" for reason in [r for r in alert.reasons if not r.startswith("已确认")][:6]),
    ]
    if alert.baseline is not None and alert.kind.value == "spike":
        lines.append(f"- 计数 {alert.count} / 基线 {alert.baseline:.1f}")
    for sample in alert.samples[:3]:
        lines.append(f"> {sample.quote}")
    lines.append(f"\n状态: {state_text(alert, tz)}")
    lines.append(f"时间 {span(alert.first_seen, alert.last_seen, tz)} (首次 – 最近) · {alert.alert_id}")
    return "\n".join(lines)


def render(hook: WebhookSettings, alert: Alert, now: float, tz: str | None = None) -> tuple[str, bytes, dict[str, str]]:
    """(url, body, headers) for one delivery in the hook's format."""
    headers = {"Content-Type": "application/json; charset=utf-8"}
    url = hook.url
    if hook.format == "generic":
        body = alert.model_dump_json().encode()
        timestamp = str(int(now))
        headers[TIMESTAMP_HEADER] = timestamp
        if hook.secret is not None:
            headers[SIGNATURE_HEADER] = "sha256=" + sign(hook.secret.get_secret_value(), timestamp, body)
        return url, body, headers
    text = _markdown(alert, tz)
    title = f"[{alert.priority.value}] {alert.title}"
    if hook.format == "dingtalk":
        payload = {"msgtype": "markdown", "markdown": {"title": title, "text": text}}
        if hook.secret is not None:
            # DingTalk's signed robots: sign = base64(HMAC-SHA256(secret, "timestamp\nsecret")) in the query.
            timestamp = str(int(now * 1000))
            secret = hook.secret.get_secret_value()
            digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
            query = urllib.parse.urlencode({"timestamp": timestamp, "sign": base64.b64encode(digest).decode()})
            url = f"{url}{'&' if '?' in url else '?'}{query}"
    elif hook.format == "wecom":
        colour = "warning" if alert.priority in (Priority.P1, Priority.P2) else "comment"
        payload = {"msgtype": "markdown", "markdown": {"content": f'<font color="{colour}">{title}</font>\n' + text}}
    else:  # slack
        payload = {
            "text": title,
            "attachments": [{"color": COLOUR[alert.priority.value], "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": text.replace("**", "*")}},
            ]}],
        }
    return url, json.dumps(payload, ensure_ascii=False).encode(), headers


@dataclass
class DeliveryStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    dropped: int = 0
    # The latest final failures: (url, alert id, error).
    failures: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    hook: WebhookSettings = field(compare=False)
    alert: Alert = field(compare=False)
    attempt: int = field(default=1, compare=False)


class WebhookDispatcher:
    def __init__(
        self,
        hooks: list[WebhookSettings],
        queue_size: int = 1000,
        max_attempts: int = 5,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        tz: str | None = None,
    ):
        self.tz = tz
        self.hooks = hooks
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.clock = clock
        self.stats = DeliveryStats()
        self._queue: queue.Queue[_Job] = queue.Queue(maxsize=queue_size)
        self._client = client or httpx.Client(follow_redirects=False)
        self._seq = itertools.count()
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._busy = 0
        self._thread = threading.Thread(target=self._work, name="alert-webhooks", daemon=True)
        self._thread.start()

    @classmethod
    def from_settings(cls, alerts) -> WebhookDispatcher:
        dispatcher = cls(alerts.webhooks, alerts.webhook_queue_size, alerts.webhook_max_attempts,
                         alerts.webhook_backoff_s, alerts.webhook_backoff_max_s, tz=alerts.timezone)
        # Give queued deliveries a few seconds at exit; what is still queued then is logged as lost.
        atexit.register(dispatcher.close, 5.0)
        return dispatcher

    # --- the sink (called on the stage's thread: never blocks) --------------------------

    def __call__(self, alert: Alert) -> None:
        for hook in self.hooks:
            if alert.priority.rank > Priority(hook.min_priority).rank:
                continue
            try:
                with self._idle:
                    self._busy += 1
                self._queue.put_nowait(_Job(0.0, next(self._seq), hook, alert))
            except queue.Full:
                with self._idle:
                    self._busy -= 1
                self._record_failure(hook, alert, "queue full", outcome="dropped")

    # --- the worker ------------------------------------------------------------------------

    def _work(self) -> None:
        retries: list[_Job] = []
        while not self._stop.is_set():
            timeout = 0.2 if not retries else max(0.0, min(0.2, retries[0].due - time.monotonic()))
            try:
                job = self._queue.get(timeout=timeout)
            except queue.Empty:
                job = None
            if job is None and retries and retries[0].due <= time.monotonic():
                job = heapq.heappop(retries)
            if job is None:
                continue
            retry = self._attempt(job)
            if retry is not None:
                heapq.heappush(retries, retry)
            else:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    def _attempt(self, job: _Job) -> _Job | None:
        hook, alert = job.hook, job.alert
        try:
            url, body, headers = render(hook, alert, self.clock(), self.tz)
            response = self._client.post(url, content=body, headers=headers, timeout=hook.timeout_s)
            if response.status_code >= 300:
                raise DeliveryError(f"HTTP {response.status_code}: {response.text[:200]}")
            if hook.format in ("dingtalk", "wecom"):
                # These robots answer 200 with an error code in the body.
                answer = response.json() if response.content else {}
                if isinstance(answer, dict) and answer.get("errcode", 0) != 0:
                    raise DeliveryError(f"errcode {answer.get('errcode')}: {answer.get('errmsg')}")
        except (httpx.HTTPError, DeliveryError, ValueError) as exc:
            if job.attempt >= self.max_attempts:
                self._record_failure(hook, alert, f"{type(exc).__name__}: {exc}", outcome="failed", attempts=job.attempt)
                return None
            delay = min(self.backoff_max_s, self.backoff_s * 2 ** (job.attempt - 1))
            self.stats.retried += 1
            DELIVERIES.labels(hook.format, "retried").inc()
            log.info("webhook %s attempt %d failed (%s); retrying in %.1f s", hook.url, job.attempt, exc, delay)
            return _Job(time.monotonic() + delay, next(self._seq), hook, alert, job.attempt + 1)
        self.stats.sent += 1
        DELIVERIES.labels(hook.format, "sent").inc()
        return None

    def _record_failure(self, hook: WebhookSettings, alert: Alert, error: str, outcome: str, attempts: int = 0) -> None:
        if outcome == "dropped":
            self.stats.dropped += 1
        else:
            self.stats.failed += 1
        self.stats.failures = [*self.stats.failures, (hook.url, alert.alert_id, error)][-50:]
        DELIVERIES.labels(hook.format, outcome).inc()
        log.error("webhook %s %s alert %s rev %d after %d attempt(s): %s",
                  hook.url, outcome, alert.alert_id, alert.revision, attempts, error)

    # --- lifecycle -------------------------------------------------------------------------

    def drain(self, timeout_s: float = 30.0) -> bool:
        """Wait until every queued delivery has been sent or given up; True if all done in time."""
        deadline = time.monotonic() + timeout_s
        with self._idle:
            while self._busy > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        if self._stop.is_set():
            return
        atexit.unregister(self.close)
        if not self.drain(timeout_s):
            log.error("webhooks: %d deliveries still pending at close are lost", self._busy)
        self._stop.set()
        self._thread.join(timeout=timeout_s)
        self._client.close()
