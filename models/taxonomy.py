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

ISSUE_TYPES_ZH: dict[str, str] = {
    "logistics": "物流配送",
    "product_quality": "产品质量",
    "price_billing": "价格费用",
    "service_attitude": "客服服务",
    "refund_aftersales": "售后退款",
    "technical": "技术故障",
    "account_privacy": "账户安全",
    "policy_contract": "政策合同",
    "suggestion": "功能建议",
    "praise": "表扬",
    "other": "其他",
}

SENTIMENTS: tuple[str, ...] = ("negative", "neutral", "positive")
