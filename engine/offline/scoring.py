"""The log-probabilities of a prompt's own tokens under the offline model, for legacy
completions' echo with logprobs (what evaluation harnesses read to score a text)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from engine.offline.model import NGramModel
from engine.offline.sampling import Step, logprob_entry
from engine.offline.tokenizer import Tokenizer


def prompt_entries(tok: Tokenizer, model: NGramModel, text: str, top: int) -> Iterator[dict[str, Any]]:
    """OpenAI's per-token entries for the tokens of text, each scored by the model alone (no
    sampling knobs apply to a prompt). The first has no logprob, as in OpenAI's answers: nothing
    precedes it. Each entry's token is the text it stands for, so the tokens join up to the text
    (a character spelled in byte tokens comes with its last byte), and text offsets add up."""
    history: list[int] = []
    pending = bytearray()
    for position, token in enumerate(tok.encode(text)):
        if tok.is_byte(token):
            pending += bytes(tok.token_bytes(token))
            try:
                piece = pending.decode("utf-8", "surrogatepass")
                pending.clear()
            except UnicodeDecodeError:
                piece = ""  # a character's first bytes: it is complete at its last
        else:
            piece = tok.token_str(token)
        if position == 0:
            entry = {"token": piece, "logprob": None, "bytes": tok.token_bytes(token), "top_logprobs": []}
        else:
            probs = model.probs(history)
            entry = {**logprob_entry(tok, Step(probs, probs), token, top), "token": piece}
        history.append(token)
        yield entry
