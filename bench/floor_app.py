"""The floor under the proxy's start-up time and idle memory: Python, Flask and waitress alone, one
JSON route, no kiroproxy code. stream_bench.py starts and measures it exactly like the proxy and
prints it in the `direct` column of those two figures.

    python bench/floor_app.py --port PORT
"""
from __future__ import annotations

import sys

from flask import Flask, jsonify
from waitress.server import create_server


def main() -> None:
    port = int(sys.argv[sys.argv.index("--port") + 1])
    app = Flask(__name__)

    @app.get("/v1/models")
    def models():
        return jsonify({"object": "list", "data": [{"id": "claude-sonnet-4.5", "object": "model"}]})

    create_server(app, host="127.0.0.1", port=port, threads=16).run()


if __name__ == "__main__":
    main()
