"""Command line: python -m fakeupstream --port 9100."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from fakeupstream.server import serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="fakeupstream", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--api-key", default=None, help="require this bearer key on /v1 routes")
    parser.add_argument(
        "--max-concurrency", type=int, default=0, help="requests answered at once; 429 above (0: no limit)"
    )
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, args.api_key, args.max_concurrency))


if __name__ == "__main__":
    main()
