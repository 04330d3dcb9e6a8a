"""The floor under the proxy's streaming figures: Flask, waitress and one requests.post per request
passing the upstream's bytes through unparsed, with no kiroproxy code. stream_bench.py reads it
like the proxy and prints it in the `floor` column of the stream figures: what the fixed stack
(waitress, Flask, requests, one interpreter lock) costs before the proxy does any work of its own.

    KIROPROXY_KIRO_API_URL=http://fake python bench/floor_stream_app.py --port PORT
"""
from __future__ import annotations

import json
import os
import sys
import threading
from typing import Iterator

import requests
from flask import Flask, Response, request
from waitress.server import create_server

_sessions = threading.local()  # one requests.Session per thread, as the proxy keeps them


def main() -> None:
    port = int(sys.argv[sys.argv.index("--port") + 1])
    upstream = os.environ["KIROPROXY_KIRO_API_URL"].rstrip("/") + "/generateAssistantResponse"
    app = Flask(__name__)

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": []}

    @app.post("/v1/messages")
    @app.post("/v1/chat/completions")
    def relay():
        body = request.get_json()
        session = getattr(_sessions, "session", None) or requests.Session()
        _sessions.session = session
        answer = session.post(upstream, data=json.dumps({"bench": "stream", "model": body.get("model")}),
                              headers={"Authorization": "Bearer bench-acc", "Content-Type": "application/json"},
                              stream=True, timeout=60)

        def chunks() -> Iterator[bytes]:
            try:
                yield from answer.raw.stream(65536, decode_content=False)
            finally:
                answer.close()

        return Response(chunks(), mimetype="text/event-stream")

    # Threads as the proxy's defaults give (a stream holds one to its end).
    create_server(app, host="127.0.0.1", port=port, threads=80, connection_limit=1000).run()


if __name__ == "__main__":
    main()
