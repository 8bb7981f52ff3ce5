"""The label sets the classifiers predict (kept here: models/ imports nothing of ours).

A test asserts that ``ISSUE_TYPES`` equals the values of ``topics.schemas.IssueType``.
"""

from __future__ import annotations

ISSUE_TYPES: tuple[str, ...] = (
    "logistics",
    "product_quality",
    "price_billing",
    "service_attitude",
    "refund_aftersales",
    "technical",
    "account_privacy",
    "policy_contract",
    "suggestion",
    "praise",
    "other",
)

SENTIMENTS: tuple[str, ...] = ("negative", "neutral", "positive")
