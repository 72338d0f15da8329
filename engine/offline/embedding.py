"""Deterministic text embeddings with nothing to download: signed feature hashing of words, word
pairs and character n-grams, weighted by how rare each word is in the bundled corpus, L2-normalised.

Texts that share words, or parts of words ("king", "kings", "kingdom"), come out near each other;
the same text gives the same vector in every process and at every width. A feature's 64-bit hash
picks its column (hash mod width) and its sign (top bit), so the vectors of one text at two
widths are different projections of the same features.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections import Counter

import numpy as np

from engine.offline import corpus

_WORD = re.compile(r"\w+")
CHAR_NGRAMS = (3, 4, 5)
# A word's character n-grams together weigh this much against the word itself: enough to bring
# "king" and "kings" together, not so much that spelling outweighs meaning.
CHAR_WEIGHT = 0.8
# A pair of neighbouring words weighs this much against one word: some word order, no more.
PAIR_WEIGHT = 0.5
_SIGN = np.uint64(63)


def _hash(feature: str) -> int:
    # blake2b, not hash(): the same in every process whatever PYTHONHASHSEED says.
    return int.from_bytes(hashlib.blake2b(feature.encode("utf-8", "surrogatepass"), digest_size=8).digest())


@functools.cache
def _document_frequency() -> tuple[Counter[str], int]:
    """How many corpus paragraphs hold each lowercased word, and how many there are."""
    paragraphs = corpus.paragraphs()
    counts: Counter[str] = Counter()
    for paragraph in paragraphs:
        counts.update(set(_WORD.findall(paragraph.lower())))
    return counts, len(paragraphs)


def idf(word: str) -> float:
    """Smoothed inverse document frequency: "the" weighs about 1, a word the corpus never shows
    about 9, so shared function words make texts less near than shared content words."""
    counts, total = _document_frequency()
    return math.log((total + 1) / (counts.get(word, 0) + 1)) + 1


@functools.lru_cache(maxsize=1 << 16)
def _word_features(word: str) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, weights) of one word: the word, and its character n-grams with the word's edges
    marked. Cached: words repeat, and hashing is most of the cost."""
    marked = f"<{word}>"
    grams = [marked[i : i + n] for n in CHAR_NGRAMS for i in range(len(marked) - n + 1)]
    weight = idf(word)
    hashes = np.fromiter(
        (_hash("w:" + word), *(_hash("c:" + g) for g in grams)), dtype=np.uint64, count=len(grams) + 1
    )
    weights = np.empty(len(hashes), dtype=np.float64)
    weights[0] = weight
    weights[1:] = weight * CHAR_WEIGHT / math.sqrt(len(grams)) if grams else 0.0
    return hashes, weights


@functools.lru_cache(maxsize=1 << 16)
def _pair_feature(first: str, second: str) -> tuple[int, float]:
    """(hash, weight) of two neighbouring words; cached, as _word_features."""
    return _hash(f"p:{first} {second}"), PAIR_WEIGHT * math.sqrt(idf(first) * idf(second))


def _sublinear(count: int) -> float:
    # Repeating a word is not shouting it.
    return 1 + math.log(count)


def _features(text: str) -> tuple[np.ndarray, np.ndarray]:
    words = _WORD.findall(text.lower())
    if not words:
        # Only marks or spaces: the text itself is the one "word", so "?!" and "..." still differ.
        words = [text.strip() or text]
    hashes: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    for word, count in Counter(words).items():
        word_hashes, word_weights = _word_features(word)
        hashes.append(word_hashes)
        weights.append(word_weights if count == 1 else word_weights * _sublinear(count))
    if len(words) > 1:
        pair_hashes: list[int] = []
        pair_weights: list[float] = []
        for (first, second), count in Counter(zip(words, words[1:], strict=False)).items():
            pair_hash, weight = _pair_feature(first, second)
            pair_hashes.append(pair_hash)
            pair_weights.append(weight if count == 1 else weight * _sublinear(count))
        hashes.append(np.array(pair_hashes, dtype=np.uint64))
        weights.append(np.array(pair_weights, dtype=np.float64))
    return np.concatenate(hashes), np.concatenate(weights)


def embed_text(text: str, dimensions: int) -> np.ndarray:
    """The text's unit vector (float32) of the given width."""
    hashes, weights = _features(text)
    columns = (hashes % np.uint64(dimensions)).astype(np.intp)
    signed = np.where((hashes >> _SIGN) == 1, -weights, weights)
    vector: np.ndarray = np.bincount(columns, weights=signed, minlength=dimensions)
    norm = float(np.linalg.norm(vector))
    if norm == 0.0:  # every feature cancelled out in a very narrow vector
        vector[0], norm = 1.0, 1.0
    return (vector / norm).astype(np.float32)
