"""The bundled public-domain training text, read once and split into paragraphs."""

from __future__ import annotations

import functools
from pathlib import Path

PATH = Path(__file__).with_name("data") / "shakespeare.txt"
DESCRIPTION = "Tiny Shakespeare, first 224 KB (Coriolanus, opening of Richard III); public domain"


@functools.cache
def paragraphs() -> tuple[str, ...]:
    # Blank lines separate speeches; each speech is one training document ending in end-of-text.
    text = PATH.read_text(encoding="utf-8")
    return tuple(p for p in text.split("\n\n") if p.strip())
