"""Interpolated Kneser-Ney word n-gram model over the tokenizer's vocabulary, built once per process."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from engine.offline import corpus
from engine.offline.tokenizer import EOT_ID, Tokenizer, default_tokenizer

ORDER = 3


@dataclass(frozen=True, slots=True)
class _Level:
    """Counts for one order k >= 2, grouped by context. The rows hold each context's followers."""

    rows: dict[int, int]  # context key (base-V number of the k-1 context ids) -> row
    starts: np.ndarray  # row r owns followers [starts[r], starts[r + 1])
    ids: np.ndarray  # follower token ids
    mass: np.ndarray  # max(count - D, 0) / context total: the discounted direct probability
    backoff: np.ndarray  # per row: D * distinct followers / context total, left for order k-1


class NGramModel:
    def __init__(self, tokenizer: Tokenizer, documents: Iterable[str], order: int = ORDER) -> None:
        if not 2 <= order <= 4:
            # Keys are base-V numbers of `order` digits and must fit in int64.
            raise ValueError("order must be 2, 3 or 4")
        self.order = order
        self.vocab_size = v = tokenizer.vocab_size
        pad = [EOT_ID] * (order - 1)
        windows = []
        for doc in documents:
            seq = np.array([*pad, *tokenizer.encode(doc), EOT_ID], dtype=np.int64)
            key = np.zeros(len(seq) - order + 1, dtype=np.int64)
            for k in range(order):
                key = key * v + seq[k : len(seq) - order + 1 + k]
            windows.append(key)
        keys: np.ndarray
        counts: np.ndarray
        keys, counts = np.unique(np.concatenate(windows), return_counts=True)

        # Top order uses raw counts. Each lower order counts distinct left neighbours instead
        # (Kneser-Ney): a word seen only after one phrase should not be a likely backoff guess.
        levels: list[_Level] = []
        for k in range(order, 1, -1):
            levels.append(_level(keys, counts, v))
            keys, counts = np.unique(keys % v ** (k - 1), return_counts=True)
        self._levels = levels[::-1]  # bigrams first, so probs() can add detail order by order

        # Unigram continuation counts, interpolated with a uniform floor over every token the
        # model may produce: end-of-text and the corpus pieces, never the byte-fallback tokens.
        discount = _discount(counts)
        total = counts.sum()
        unigram = np.zeros(v)
        unigram[keys] = np.maximum(counts - discount, 0) / total
        producible = np.zeros(v, dtype=bool)
        producible[: tokenizer.first_byte_id] = True
        unigram[producible] += discount * len(keys) / total / producible.sum()
        self._unigram = unigram

    def probs(self, context: Sequence[int]) -> np.ndarray:
        """P(next | last order-1 ids of context), a new float64 array over the vocabulary that
        sums to 1. A short context is padded with end-of-text, like a document start."""
        need = self.order - 1
        ctx = [EOT_ID] * max(0, need - len(context)) + list(context[-need:])
        p = self._unigram.copy()
        for k, level in enumerate(self._levels, start=2):
            key = 0
            for t in ctx[need - (k - 1) :]:
                key = key * self.vocab_size + t
            row = level.rows.get(key)
            if row is None:
                # Unseen context: this order adds nothing, the lower-order estimate stands.
                continue
            lo, hi = level.starts[row], level.starts[row + 1]
            p *= level.backoff[row]
            p[level.ids[lo:hi]] += level.mass[lo:hi]
        return p


def _level(keys: np.ndarray, counts: np.ndarray, v: int) -> _Level:
    contexts, starts = np.unique(keys // v, return_index=True)
    totals = np.add.reduceat(counts, starts)
    distinct = np.diff(np.append(starts, len(keys)))
    discount = _discount(counts)
    row_of = np.repeat(np.arange(len(contexts)), distinct)
    return _Level(
        rows=dict(zip(contexts.tolist(), range(len(contexts)), strict=True)),
        starts=np.append(starts, len(keys)),
        ids=(keys % v).astype(np.intp),
        mass=np.maximum(counts - discount, 0) / totals[row_of],
        backoff=discount * distinct / totals,
    )


def _discount(counts: np.ndarray) -> float:
    # Ney's estimate D = n1 / (n1 + 2 n2) from how many n-grams occur once and twice.
    n1 = int((counts == 1).sum())
    n2 = int((counts == 2).sum())
    if n1 == 0 or n2 == 0:
        return 0.75
    return min(max(n1 / (n1 + 2 * n2), 0.05), 0.95)


_shared: NGramModel | None = None
_lock = threading.Lock()


def default_model() -> NGramModel:
    """The model trained on the bundled corpus: one per process, built on first use."""
    global _shared
    if _shared is None:
        with _lock:
            if _shared is None:
                _shared = NGramModel(default_tokenizer(), corpus.paragraphs())
    return _shared
