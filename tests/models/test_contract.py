"""models/ is self-contained and its label sets are the project's."""

from __future__ import annotations

import ast
from pathlib import Path

import models
from models.taxonomy import ISSUE_TYPES, SENTIMENTS
from topics.schemas import IssueType, SentimentLabel


def test_issue_taxonomy_matches_schema():
    assert list(ISSUE_TYPES) == [e.value for e in IssueType]


def test_sentiment_labels_match_schema():
    assert list(SENTIMENTS) == [e.value for e in SentimentLabel]


def test_models_imports_nothing_of_ours():
    root = Path(models.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in {"topics", "consumers", "pipelines"}:
                    offenders.append(f"{path.name}: {name}")
    assert not offenders


def test_shipped_artifacts_are_small():
    art = Path(models.__file__).parent / "artifacts"
    total = sum(p.stat().st_size for p in art.rglob("*") if p.is_file())
    assert total <= 20 * 1024 * 1024
