"""Word-level tokenizer: tokens keep their leading space, and unseen text falls back to bytes."""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterable, Sequence

from engine.offline import corpus

EOT = "<|endoftext|>"
EOT_ID = 0
# One space sticks to the word, number or mark that follows it (GPT style). Any other whitespace
# is a token of its own. Every character matches some branch, so joining the pieces gives the
# text back exactly.
_PIECE = re.compile(r" ?[^\W\d_]+(?:'[^\W\d_]+)*| ?\d+| ?\S|\s")


def split(text: str) -> list[str]:
    return _PIECE.findall(text)


class Tokenizer:
    """Ids: 0 is end-of-text, then corpus pieces by descending frequency (ties in code-point
    order), then 256 byte-fallback tokens "<0x00>".."<0xFF>" for text the corpus never showed."""

    def __init__(self, documents: Iterable[str]) -> None:
        counts = Counter(piece for doc in documents for piece in split(doc))
        words = sorted(counts, key=lambda piece: (-counts[piece], piece))
        self.tokens: list[str] = [EOT, *words, *(f"<0x{b:02X}>" for b in range(256))]
        self.frequency: list[int] = [0, *(counts[w] for w in words), *([0] * 256)]
        self.first_byte_id = len(words) + 1
        self.vocab_size = len(self.tokens)
        # Only corpus pieces are looked up while encoding, so text that merely spells
        # "<|endoftext|>" or "<0x41>" never turns into a special token.
        self._word_ids = {w: i for i, w in enumerate(words, start=1)}
        self._ids = {t: i for i, t in enumerate(self.tokens)}

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for piece in split(text):
            word = self._word_ids.get(piece)
            if word is not None:
                ids.append(word)
            else:
                ids.extend(self.first_byte_id + b for b in piece.encode("utf-8", "surrogatepass"))
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        out: list[str] = []
        pending = bytearray()
        for i in ids:
            if self.is_byte(i):
                pending.append(i - self.first_byte_id)
                continue
            if pending:
                out.append(_utf8(pending))
                pending.clear()
            # End-of-text marks a boundary; it is not text.
            if i != EOT_ID:
                out.append(self.tokens[i])
        if pending:
            out.append(_utf8(pending))
        return "".join(out)

    def token_id(self, token: str) -> int:
        try:
            return self._ids[token]
        except KeyError:
            raise KeyError(f"{token!r} is not a token of the offline vocabulary") from None

    def token_str(self, token_id: int) -> str:
        return self.tokens[token_id]

    def token_bytes(self, token_id: int) -> list[int]:
        if self.is_byte(token_id):
            return [token_id - self.first_byte_id]
        return list(self.tokens[token_id].encode("utf-8"))

    def is_byte(self, token_id: int) -> bool:
        return self.first_byte_id <= token_id < self.vocab_size

    def is_word(self, token_id: int) -> bool:
        return 0 < token_id < self.first_byte_id

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))


def _utf8(raw: bytes | bytearray) -> str:
    try:
        return bytes(raw).decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        # Arbitrary id sequences can split a character; never fail a decode because of it.
        return bytes(raw).decode("utf-8", "replace")


_shared: Tokenizer | None = None
_lock = threading.Lock()


def default_tokenizer() -> Tokenizer:
    """The tokenizer built from the bundled corpus: one per process, built on first use."""
    global _shared
    if _shared is None:
        with _lock:
            if _shared is None:
                _shared = Tokenizer(corpus.paragraphs())
    return _shared


def encode(text: str) -> list[int]:
    return default_tokenizer().encode(text)


def decode(ids: Sequence[int]) -> str:
    return default_tokenizer().decode(ids)


def token_id(token: str) -> int:
    return default_tokenizer().token_id(token)


def count_tokens(text: str) -> int:
    return default_tokenizer().count_tokens(text)
