#!/usr/bin/python3
"""Run the strict fake TikTok server (tests/fake/tiktokfake) from the command line.

    /usr/bin/python3 tests/fake/tiktok_fake.py [--host 127.0.0.1] [--port 0] [--config FILE.json]
                                               [--tls-cert PEM --tls-key PEM]

After binding it prints one JSON line on stdout, e.g.
    {"port": 41234, "base_url": "http://127.0.0.1:41234", "control": "http://127.0.0.1:41234/_fake"}
then serves until SIGTERM or SIGINT and exits 0. In process: `FakeTikTok(config).start()`.
See docs/testing.md.
"""

import argparse
import json
import os
import signal
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tiktokfake import FakeTikTok  # noqa: E402

__all__ = ["FakeTikTok", "main"]


def main(argv=None):
    parser = argparse.ArgumentParser(description="Strict fake TikTok API server (loopback only).")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
    parser.add_argument("--config", help="JSON file with config keys (docs/testing.md)")
    parser.add_argument("--tls-cert", help="PEM certificate chain: serve HTTPS")
    parser.add_argument("--tls-key", help="PEM private key for --tls-cert")
    args = parser.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")

    config = {}
    if args.config:
        with open(args.config, encoding="utf-8") as fh:
            config = json.load(fh)
    try:
        fake = FakeTikTok(config, host=args.host, port=args.port, tls_cert=args.tls_cert, tls_key=args.tls_key)
        base = fake.start()
    except (ValueError, OSError) as exc:
        print("tiktok_fake: %s" % exc, file=sys.stderr)
        return 2

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    sys.stdout.write(json.dumps({"port": fake.port, "base_url": base, "control": fake.control_url}) + "\n")
    sys.stdout.flush()
    while not done.wait(3600):
        pass
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
