"""``python -m supabase_local [--port N] [--db-url DSN]``: run the stack until SIGINT/SIGTERM.

Prints one JSON line: ``{"url", "anon_key", "service_role_key", "jwt_secret", "db_url"}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading

from .stack import LocalStack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m supabase_local", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="gateway port (default: a free one)")
    parser.add_argument("--db-url", default=None, help="use this PostgreSQL instead of a private cluster")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stack = LocalStack.start(port=args.port, db_url=args.db_url)
    try:
        info = {
            "url": stack.url,
            "anon_key": stack.anon_key,
            "service_role_key": stack.service_role_key,
            "jwt_secret": stack.jwt_secret,
            "db_url": stack.db_url,
        }
        sys.stdout.write(json.dumps(info) + "\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    finally:
        stack.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
