"""A minimal decision-log and status collector for docker-compose.yml (stdlib only; not for production).

OPA's decision-log plugin POSTs gzip-compressed JSON arrays of events to /logs; its status plugin POSTs
JSON to /status. This prints one JSON line per decision event and one summary line per status report.
In production point the sidecars at a real pipeline instead (an HTTP input of Fluent Bit, Vector or
Logstash, or OPA Control Plane's / a vendor's decision-log API); see docs/running-at-scale.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip" or raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        try:
            body = json.loads(raw)
        except ValueError:
            self.send_error(400, "body is not JSON")
            return
        path = self.path.split("?", 1)[0]
        if path.startswith("/logs") and isinstance(body, list):
            for event in body:
                print(json.dumps({"kind": "decision", **event}, sort_keys=True), flush=True)
        elif path.startswith("/status") and isinstance(body, dict):
            bundles = {
                name: {k: info.get(k) for k in ("active_revision", "code", "message") if info.get(k)}
                for name, info in (body.get("bundles") or {}).items()
            }
            print(json.dumps({"kind": "status", "labels": body.get("labels"), "bundles": bundles}), flush=True)
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # health check
        self.send_response(200 if self.path == "/healthz" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"collecting decision logs on {args.host}:{args.port} (/logs, /status)", file=sys.stderr, flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
