"""Offline embedding throughput on one core: texts per second through OfflineEngine.embed (the
work a web process does for /v1/embeddings, Embeddings pixels and /v1/jobs/embeddings, before the
JSON is written), by text length, batch size and width. `python -m bench.embeddings [--rounds N]`.

The texts are real prose: runs of words from the bundled corpus, every one different. "cold" is
the first pass in a fresh process (no word is cached yet: each word's features are hashed once);
"warm" repeats the same texts, as a long-running web process sees recurring words. CPU time is
the process's, so the figure is per core whatever else the machine runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import time

from engine.embeddings import EmbeddingRequest
from engine.offline import OfflineEngine, corpus
from engine.offline import embedding as features

LENGTHS = {"short (10 words)": 10, "medium (50 words)": 50, "long (300 words)": 300}
BATCH = 256
WIDTHS = (1024, 256)


def texts(words_each: int, count: int, offset: int = 0) -> list[str]:
    words = re.findall(r"\S+", " ".join(corpus.paragraphs()))
    step = max(1, words_each // 3)  # overlapping runs, so each text differs
    out = []
    for i in range(count):
        start = ((offset + i) * step) % (len(words) - words_each)
        out.append(" ".join(words[start : start + words_each]))
    return out


def _cpu_rate(engine: OfflineEngine, batch: list[str], width: int) -> float:
    request = EmbeddingRequest(inputs=batch, dimensions=width)
    cpu = time.process_time()
    asyncio.run(engine.embed(request))
    return len(batch) / (time.process_time() - cpu)


def measure(rounds: int) -> list[dict[str, object]]:
    engine = OfflineEngine({})
    engine.tokenizer  # noqa: B018  (built before the clock starts: a web process builds it once)
    features.idf("warm-up")
    rows: list[dict[str, object]] = []
    for label, words_each in LENGTHS.items():
        for width in WIDTHS:
            features._word_features.cache_clear()
            features._pair_feature.cache_clear()
            batch = texts(words_each, BATCH, offset=width)
            cold = _cpu_rate(engine, batch, width)
            warm = statistics.median(_cpu_rate(engine, batch, width) for _ in range(rounds))
            rows.append({"texts": label, "width": width, "batch": BATCH, "cold": cold, "warm": warm})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="warm passes; the median is reported")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    rows = measure(args.rounds)
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"{'texts':<20} {'width':>5} {'batch':>5} {'cold texts/s':>13} {'warm texts/s':>13}")
    for row in rows:
        print(
            f"{row['texts']:<20} {row['width']:>5} {row['batch']:>5} "
            f"{row['cold']:>13,.0f} {row['warm']:>13,.0f}"
        )


if __name__ == "__main__":
    main()
