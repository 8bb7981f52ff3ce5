"""The alerter stage: enriched feedback in, alert events on ``feedback.alerts`` out.

Pure apart from its injected collaborators: the rule matcher, the state store
(a SQLAlchemy engine) and the clock that stamps ``emitted_at``. Windows run on
event time, so replaying a stream gives the same alerts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa

from consumers.alerter.engine import AlertEngine
from consumers.alerter.rules import TermMatcher, load_rules
from consumers.alerter.state import AlertStateStore
from consumers.stage import EventStage, InMessage, OutMessage, StageResult, trace_id_of
from topics.schemas import Alert, EnrichedFeedback, utcnow
from topics.settings import AlertSettings
from topics.specs import ALERTS, ENRICHED

log = logging.getLogger(__name__)

AlertSink = Callable[[Alert], None]


class AlerterStage(EventStage[EnrichedFeedback]):
    name = "alerter"
    input_topic = ENRICHED
    output_topics = (ALERTS,)
    input_model = EnrichedFeedback

    def __init__(
        self,
        settings: AlertSettings,
        store: sa.Engine,
        matcher: TermMatcher | None = None,
        clock: Callable[[], datetime] = utcnow,
        sinks: list[AlertSink] | None = None,
        max_event_bytes: int | None = None,
    ):
        self.settings = settings
        self.matcher = matcher or TermMatcher(load_rules(settings.rules_path))
        self.engine = AlertEngine.build(self.matcher, settings, clock)
        self.state = AlertStateStore(store)
        # Called with every new alert after its state is committed (webhooks); must not block.
        self.sinks = sinks or []
        self.max_event_bytes = max_event_bytes

    def handle(self, events: list[tuple[InMessage, EnrichedFeedback]]) -> StageResult:
        result = StageResult()
        fresh: list[Alert] = []
        partitions = {(m.topic, m.partition) for m, _ in events}
        # A batch mixes partitions; in event-time order their events meet the windows as they happened.
        ordered = sorted(events, key=lambda item: item[1].received_at)
        with self.state.batch(self.engine, partitions) as batch:
            for message, event in ordered:
                if batch.already_processed(message):
                    # Redelivered after a crash: state already counted it; publish what it caused again.
                    for alert in batch.replayed_alerts(message):
                        result.outputs.append(self._out(alert, message))
                    continue
                for alert in self.engine.process(event):
                    batch.log(alert, message)
                    fresh.append(alert)
                    result.outputs.append(self._out(alert, message))
                batch.done(message)
        for alert in fresh:
            for sink in self.sinks:
                sink(alert)
        return result

    def _out(self, alert: Alert, message: InMessage) -> OutMessage:
        return OutMessage(ALERTS, alert, alert.partition_key(), trace_id_of(message))
