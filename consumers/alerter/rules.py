"""Priority rules from a YAML file, and the term matcher with negation.

Terms are matched on jieba tokens: every term (and phrase) is added to a
private tokenizer's dictionary so that it comes out as one token, then a hit
is a token equal to a term. Matching whole tokens (not substrings) keeps
``报警器`` from matching ``报警``. A hit right after a negator, with only
filler tokens between (``没有 造成 人员 受伤``), is negated.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

DEFAULT_RULES = "rules.yaml"


class RulesError(ValueError):
    """The rules file is missing or malformed."""


@dataclass(frozen=True)
class Category:
    name: str
    zh: str
    terms: tuple[str, ...]


@dataclass(frozen=True)
class Rules:
    categories: tuple[Category, ...]
    ignore_when_positive: bool
    negators: frozenset[str]
    fillers: frozenset[str]
    max_fillers: int
    vip_tiers: frozenset[str]
    vip_negative_score: float
    social_min_reposts: int
    social_min_likes: int
    social_min_mentions: int
    negative_score: float
    unspecific_issue_types: frozenset[str]
    negative_aspects: bool = True

    def category(self, name: str) -> Category:
        return next(c for c in self.categories if c.name == name)


def _strings(value, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
        raise RulesError(f"{where} must be a list of strings")
    return [str(v).strip() for v in value if str(v).strip()]


def parse_rules(data: object) -> Rules:
    if not isinstance(data, dict):
        raise RulesError("the rules file must hold a mapping")
    try:
        p1, negation, p2, p3 = data["p1"], data["negation"], data["p2"], data["p3"]
        categories = []
        for name, spec in p1["categories"].items():
            terms = _strings(spec["terms"], f"p1.categories.{name}.terms")
            if not terms:
                raise RulesError(f"p1.categories.{name} has no terms")
            categories.append(Category(name, str(spec.get("zh", name)), tuple(terms)))
        reach = p2.get("social_reach", {})
        return Rules(
            categories=tuple(categories),
            ignore_when_positive=bool(p1.get("ignore_when_positive", True)),
            negators=frozenset(_strings(negation["negators"], "negation.negators")),
            fillers=frozenset(_strings(negation.get("fillers", []), "negation.fillers")),
            max_fillers=int(negation.get("max_fillers", 2)),
            vip_tiers=frozenset(t.lower() for t in _strings(p2["vip_tiers"], "p2.vip_tiers")),
            vip_negative_score=float(p2["vip_negative_score"]),
            social_min_reposts=int(reach.get("min_reposts", 10**9)),
            social_min_likes=int(reach.get("min_likes", 10**9)),
            social_min_mentions=int(reach.get("min_mentions", 10**9)),
            negative_score=float(p3["negative_score"]),
            unspecific_issue_types=frozenset(_strings(p3["unspecific_issue_types"], "p3.unspecific_issue_types")),
            negative_aspects=bool(p3.get("negative_aspects", True)),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise RulesError(f"malformed rules file: missing or wrong {exc}") from exc


def load_rules(path: Path | None = None) -> Rules:
    """Read the rules file (``None``: the one shipped with the package)."""
    if path is None:
        text = (resources.files("consumers.alerter") / DEFAULT_RULES).read_text(encoding="utf-8")
    else:
        if not Path(path).is_file():
            raise RulesError(f"rules file not found: {path}")
        text = Path(path).read_text(encoding="utf-8")
    try:
        return parse_rules(yaml.safe_load(text))
    except yaml.YAMLError as exc:
        raise RulesError(f"rules file is not valid YAML: {exc}") from exc


@dataclass(frozen=True)
class TermHit:
    category: str
    term: str
    negated: bool
    # The negator that cancelled the hit, for the explanation.
    negator: str | None = None


@dataclass
class TermMatcher:
    """Finds rule terms in a text, aware of negation."""

    rules: Rules
    _terms: dict[str, str] = field(init=False)
    _tokenizer: object = field(init=False)

    _lock = threading.Lock()

    def __post_init__(self) -> None:
        import jieba

        self._terms = {}
        for category in self.rules.categories:
            for term in category.terms:
                self._terms.setdefault(term, category.name)
        # A private tokenizer: the terms must not change jieba's global dictionary for other stages.
        with self._lock:
            tokenizer = jieba.Tokenizer()
            tokenizer.initialize()
            for word in (*self._terms, *self.rules.negators, *self.rules.fillers):
                tokenizer.add_word(word, freq=1_000_000)
        self._tokenizer = tokenizer

    def tokens(self, text: str) -> list[str]:
        return [t for t in self._tokenizer.lcut(text, HMM=False) if t.strip()]

    def find(self, text: str) -> list[TermHit]:
        tokens = self.tokens(text)
        hits = []
        for index, token in enumerate(tokens):
            category = self._terms.get(token)
            if category is None:
                continue
            negator = self._negator_before(tokens, index)
            hits.append(TermHit(category, token, negator is not None, negator))
        return hits

    def _negator_before(self, tokens: list[str], index: int) -> str | None:
        position = index - 1
        fillers = 0
        while position >= 0:
            token = tokens[position]
            if token in self.rules.negators:
                return token
            if token in self.rules.fillers and fillers < self.rules.max_fillers:
                fillers += 1
                position -= 1
                continue
            return None
        return None
