"""The alerter stage: enriched feedback → priority, spike and sentiment alerts on ``feedback.alerts``."""
