"""The topic embedding themes cluster on: the untuned encoder's top layers, run as a branch of the served pass.

The served model's top layers are tuned for sentiment and issue type, so its outputs group "all
praise" and "all product complaints" together; the untuned encoder's last layer groups by subject
(docs/themes.md: purity against source category 0.53 with the split-layer pool, ≈0.7 with this).
Tuning changed only the layers from ``split_layer`` up (models/artifacts/config.json
``tuned_layers``), so the layers below it are the same in both models: the branch starts from the
served pass's hidden states at ``from_layer`` and runs the *untuned* layers ``from_layer``..
``to_layer`` on them. That costs those layers only, in the same ONNX graph and batch as the served
model (one tokenisation, one session call), instead of a second full pass.

``skip_layers`` leaves middle layers out. Each layer adds to a residual stream, and the last
layers are the ones that group by subject (pooling layer 10 instead of 12 halves purity), so
the branch can drop a few middle layers and keep its top: measured on the two-week
benchmark's reviews (docs/themes.md), skipping layers 6–8 kept 10-nearest-neighbour agreement
on source category (0.649 vs 0.644) at 5/8 of the branch's cost.

The branch reads a text's first ``max_tokens`` tokens (a theme is named in a message's first
sentences; the median review is 23 tokens), and pools them like every other layer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The name the topic pool goes by among an encoder's pooled "layers" (the others are layer numbers).
TOPIC = "topic"

_LAYER_KEY = re.compile(r"(?:^|\.)encoder\.layer\.(\d+)\.")


@dataclass(frozen=True)
class TopicBranch:
    """Untuned layers ``from_layer`` … ``to_layer - 1``, but ``skip_layers``, on the hidden states after layer
    ``from_layer``."""

    from_layer: int
    to_layer: int = 12
    max_tokens: int = 64
    skip_layers: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.from_layer < self.to_layer:
            raise ValueError(f"a topic branch runs layers from_layer < to_layer, got {self.from_layer}..{self.to_layer}")
        if self.max_tokens < 8:
            raise ValueError(f"max_tokens must be at least 8, got {self.max_tokens}")
        if not set(self.skip_layers) <= set(range(self.from_layer, self.to_layer - 1)):
            # The last layer is the one that carries the subject: never skipped.
            raise ValueError(f"skip_layers must be layers {self.from_layer}..{self.to_layer - 2}, got {self.skip_layers}")

    @property
    def layers(self) -> list[int]:
        """The untuned layers the branch runs, in order."""
        return [n for n in range(self.from_layer, self.to_layer) if n not in self.skip_layers]

    @property
    def version(self) -> str:
        skipped = f"-skip{'.'.join(map(str, sorted(self.skip_layers)))}" if self.skip_layers else ""
        return f"untuned-L{self.from_layer}-L{self.to_layer}{skipped}-len{self.max_tokens}"

    def check_shared(self, tuned_state: dict) -> None:
        """The branch is only the untuned model when the tuned weights leave every layer below it alone."""
        below = sorted({name for name in tuned_state
                        if not (m := _LAYER_KEY.search(name)) or int(m.group(1)) < self.from_layer})
        if below:
            raise ValueError(f"the tuned weights change what the topic branch shares (from layer {self.from_layer}): "
                             f"{below[:3]}")


def topic_module(untuned_model, branch: TopicBranch):
    """A torch module ``(hidden states after from_layer, attention mask) → (n, hidden) mean pool`` from a deep copy
    of ``untuned_model``'s layers (taken before any tuned weights are loaded into it)."""
    import copy

    import torch
    from transformers.masking_utils import create_bidirectional_mask

    from models.pooling import mean_pool

    class TopicTop(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.config = untuned_model.config
            self.layers = torch.nn.ModuleList(copy.deepcopy(untuned_model.encoder.layer[n]) for n in branch.layers)

        def forward(self, hidden, mask):
            hidden, mask = hidden[:, : branch.max_tokens], mask[:, : branch.max_tokens]
            m4 = create_bidirectional_mask(config=self.config, inputs_embeds=hidden, attention_mask=mask)
            for layer in self.layers:
                hidden = layer(hidden, m4)
            return mean_pool(hidden, mask)

    top = TopicTop().eval()
    for p in top.parameters():
        p.requires_grad_(False)
    return top
