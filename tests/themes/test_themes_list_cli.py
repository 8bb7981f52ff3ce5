"""`themes list` shows the live themes as people read them: named, largest first, candidates on request."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import sqlalchemy as sa
from typer.testing import CliRunner

from consumers.store import make_engine, migrate
from consumers.store.feedback_store import FeedbackStore
from pipelines.cli import app
from tests.alerts.helpers import NOW, T0, enriched

PAYMENT = ["付款的时候支付失败了，但是银行卡已经扣款了", "支付失败好几次，每次都扣款，钱去哪了", "下单支付失败，提示网络错误，却被扣款两次",
           "重复扣款了！支付失败还扣钱，赶紧退给我", "微信支付失败但是余额被扣款了", "支付失败之后订单没了，扣款也没退回"]
OTHER = ["快递三天了还没到，物流信息一直不更新", "衣服质量很差，洗一次就掉色开线", "客服态度很差，问什么都不回复",
         "包装破损，盒子都压扁了", "屏幕有划痕，像是二手的"]


def _store(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = make_engine(url)
    migrate(engine)
    themes = [("th-named", "active", 12, "物流延误"), ("th-pay", "active", 30, None), ("th-small", "candidate", 1, None)]
    with engine.begin() as conn:
        for theme_id, status, size, label in themes:
            conn.execute(sa.text(
                "INSERT INTO themes (theme_id, status, centroid, size, label, keywords, created_at, updated_at) "
                "VALUES (:id, :status, :c, :size, :label, '[]', :t, :t)"),
                {"id": theme_id, "status": status, "c": np.zeros(4, np.float32).tobytes(), "size": size, "label": label, "t": NOW})
    items = [(enriched(text, f"e-pay-{i}", T0 + timedelta(minutes=i), theme_id="th-pay"), np.zeros(4))
             for i, text in enumerate(PAYMENT * 2)]
    items += [(enriched(f"{text} {i}", f"e-other-{i}-{j}", T0 + timedelta(hours=1, minutes=i)), np.zeros(4))
              for i in range(6) for j, text in enumerate(OTHER)]
    FeedbackStore(engine, run_migrations=False).upsert_enriched(items)
    engine.dispose()
    return url


def _rows(output: str) -> list[str]:
    return [line for line in output.splitlines() if "th-" in line]


def test_live_themes_are_named_largest_first_and_candidates_wait_for_all(tmp_path):
    env = {"FEEDBACK_MINER_STORE__URL": _store(tmp_path), "COLUMNS": "120"}
    shown = CliRunner().invoke(app, ["themes", "list"], env=env)
    assert shown.exit_code == 0, shown.output
    rows = _rows(shown.output)
    # Largest first; the unlabelled theme is named by its members' keywords, the labelled one by the digest's label.
    assert [r.split("│")[5].strip() for r in rows] == ["th-pay", "th-named"]
    assert "支付" in rows[0] or "扣款" in rows[0], rows[0]
    assert "物流延误" in rows[1]
    assert "1 candidate theme(s) with fewer than 3 members not shown (--all shows them)" in shown.output

    everything = CliRunner().invoke(app, ["themes", "list", "--all", "--limit", "2"], env=env)
    assert everything.exit_code == 0, everything.output
    assert len(_rows(everything.output)) == 2 and "1 smaller theme(s) not shown (--limit)" in everything.output
    assert "th-small" in _rows(CliRunner().invoke(app, ["themes", "list", "--all"], env=env).output)[-1]
