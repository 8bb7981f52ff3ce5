"""Issue-type heads: the character n-gram view, the fixed default blend and the cross-validated one (no encoder needed)."""

from __future__ import annotations

import numpy as np
import pytest

from models.issue_heads import BLEND_GRID, blend_probs, fit_issue_heads, view_probs
from models.lexical import CharNgrams
from models.taxonomy import ISSUE_TYPES

# Each label is signalled by its own words, as issue types often are.
CUES = {
    "logistics": ["快递太慢了", "物流一直不更新", "包裹还没送到"],
    "refund_aftersales": ["退款还没到账", "申请退货没人处理", "售后不给退款"],
    "technical": ["APP一直闪退", "登录不上去", "页面加载失败"],
    "account_privacy": ["账号被盗了", "个人信息泄露", "密码被改了"],
    "praise": ["非常满意好评", "服务很好点赞", "质量很好推荐"],
}
FILLERS = ["今天", "这次", "说实话", "上周", "昨天晚上", "第二次了", "真的", "唉"]


def test_char_ngrams_rebuild_from_terms_and_idf(tmp_path, cue_rows):
    texts, _ = cue_rows(CUES, FILLERS, 5, 0)
    fitted = CharNgrams.fit(texts, min_df=1)
    fitted.save_terms(tmp_path / "terms.json")
    rebuilt = CharNgrams(CharNgrams.load_terms(tmp_path / "terms.json"), fitted.idf)
    probe = ["快递被盗了", "完全没见过的字"]
    assert len(rebuilt) == len(fitted) and "快递" in rebuilt.terms
    assert np.allclose(rebuilt.transform(probe).toarray(), fitted.transform(probe).toarray())
    assert rebuilt.transform(["鑫鑫鑫"]).nnz == 0  # unseen characters: an empty row, not an error
    with pytest.raises(ValueError, match="idf"):
        CharNgrams(["a", "b"], np.ones(3))


def test_blend_and_thresholds_are_chosen_on_training_folds(cue_rows):
    texts, primary = cue_rows(CUES, FILLERS, 14, 1)
    # An encoder view that carries no information: the blend must lean on the words.
    X = np.random.default_rng(2).normal(size=(len(texts), 16)).astype(np.float32)
    fitted = fit_issue_heads(X, texts, [[p] for p in primary], primary, C=0.01, lexical_C=3.0, seed=13, blend=None)
    assert fitted.blend in BLEND_GRID and fitted.blend < 1.0
    assert set(fitted.cv) == {str(w) for w in BLEND_GRID}
    assert fitted.cv[str(fitted.blend)] == max(fitted.cv.values()) >= 0.9 > 0.5 > fitted.cv["1.0"]
    assert fitted.thresholds.shape == (len(ISSUE_TYPES),)

    test_texts, test_primary = cue_rows(CUES, FILLERS, 4, 3)
    Xt = (np.random.default_rng(4).normal(size=(len(test_texts), 16)) - fitted.heads["issue.mean"]) / fitted.heads["issue.scale"]
    views = [view_probs(Xt, fitted.heads, "issue"), view_probs(fitted.ngrams.transform(test_texts), fitted.heads, "lexical")]
    ovr, prim = blend_probs(views, fitted.blend)
    assert ovr.shape == prim.shape == (len(test_texts), len(ISSUE_TYPES))
    assert np.allclose(prim.sum(1), 1.0, atol=1e-5)
    pred = [ISSUE_TYPES[i] for i in prim.argmax(1)]
    assert np.mean([p == t for p, t in zip(pred, test_primary)]) >= 0.9
    # Labels never seen in training are never picked as primary.
    unseen = [ISSUE_TYPES.index(lab) for lab in ISSUE_TYPES if lab not in CUES]
    assert prim[:, unseen].max() < 1e-3


def test_default_blend_is_fixed_at_equal_weights(cue_rows):
    # The shipped encoder saw the training rows, so out-of-fold scores cannot pick the weight.
    texts, primary = cue_rows(CUES, FILLERS, 3, 7)
    X = np.random.default_rng(8).normal(size=(len(texts), 8)).astype(np.float32)
    fitted = fit_issue_heads(X, texts, [[p] for p in primary], primary, C=0.01, lexical_C=3.0, seed=13, quick=True)
    assert fitted.blend == 0.5 and fitted.ngrams is not None and "lexical.primary.weight" in fitted.heads


def test_encoder_view_alone_when_lexical_is_off(cue_rows):
    texts, primary = cue_rows(CUES, FILLERS, 12, 5)
    X = np.eye(len(CUES))[[list(CUES).index(p) for p in primary]].astype(np.float32)
    X += np.random.default_rng(6).normal(scale=0.1, size=X.shape).astype(np.float32)
    fitted = fit_issue_heads(X, texts, [[p] for p in primary], primary, C=1.0, lexical_C=3.0, seed=13, lexical=False)
    assert fitted.ngrams is None and fitted.blend == 1.0 and not any(k.startswith("lexical") for k in fitted.heads)
    assert fitted.cv == {"1.0": 1.0}


def test_primary_calibration_tempers_overconfidence_and_abstains_only_when_it_pays():
    from models.issue_heads import PrimaryCalibration, calibrate_primary, decide_primary
    from models.taxonomy import ISSUE_TYPES

    rng = np.random.default_rng(7)
    n, other = 400, ISSUE_TYPES.index("other")
    y = rng.integers(0, len(ISSUE_TYPES) - 1, n)  # never "other"
    # Overconfident scores: 0.95 on the chosen class, right only 70 % of the time.
    chosen = np.where(rng.random(n) < 0.7, y, (y + 1) % (len(ISSUE_TYPES) - 1))
    probs = np.full((n, len(ISSUE_TYPES)), 0.05 / (len(ISSUE_TYPES) - 1))
    probs[np.arange(n), chosen] = 0.95
    cal = calibrate_primary(probs, y)
    assert cal.temperature > 1.0  # softened towards the 70 % it earns
    assert cal.other_below == 0.0  # nothing here is "other": abstaining can only lose
    # Unconfident rows that really are "other" (nothing fits): abstaining pays.
    y2 = np.concatenate([y, np.full(200, other)])
    vague = rng.dirichlet(np.ones(len(ISSUE_TYPES)) * 5, 200)
    vague[:, other] = 0.0
    vague /= vague.sum(1, keepdims=True)
    cal2 = calibrate_primary(np.concatenate([probs, vague]), y2)
    assert cal2.other_below > 0.0
    decided = decide_primary(PrimaryCalibration(cal2.temperature).apply(np.concatenate([probs, vague])), cal2.other_below)
    assert (decided[n:] == other).mean() > 0.9 and (decided[:n] == other).mean() < 0.05
