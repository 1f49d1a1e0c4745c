"""Log lines never show a URL's query values: a webhook URL carries its token there.

QA saw ``urllib3.connectionpool: http://127.0.0.1:27102 "POST /h1p/mode-500?token=
QACANARYQUERY HTTP/1.1" 500`` at DEBUG. The JimmyAI API puts nothing in a query string
(/work/shared/jimmyai-api.md: ids go in the path), so every query value is masked.
"""

from __future__ import annotations

import base64
import http.server
import io
import json
import logging
import threading
import time
from collections.abc import Iterator

import pytest
import urllib3

from clonequeue.config import Settings
from clonequeue.logs import RedactingFilter, setup_logging
from clonequeue.outputs import webhooks as wh

SECRET = "whsec_" + base64.b64encode(b"q" * 32).decode()
CANARY = "QACANARYQUERY"


@pytest.fixture
def server() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(500)
            self.send_header("content-length", "0")
            self.end_headers()

        do_GET = do_POST

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_urllib3_request_lines_and_urls_show_query_names_not_values(
    server: str, log_format: str
) -> None:
    stream = io.StringIO()
    setup_logging(Settings(_env_file=None, log_level="DEBUG", log_format=log_format), stream=stream)
    try:
        url = f"{server}/h1p/mode-500?token={CANARY}&team=ops-{CANARY}"
        body = wh.event_body("job.failed", time.time(), {})
        wh.send(url, "msg_q", body, [SECRET], timeout_s=2, allow_private=True)
        urllib3.PoolManager().request("GET", f"{server}/files/a.mp3?X-Amz-Signature={CANARY}")
        logging.getLogger("tests.logs").warning("download of %s failed: what? x=1", url)
    finally:
        logging.getLogger().handlers.clear()
        logging.getLogger().setLevel(logging.WARNING)
    written = stream.getvalue()
    lines = written.splitlines()
    if log_format == "json":
        lines = [json.loads(line)["msg"] for line in lines]
    assert CANARY not in written
    request_lines = [line for line in lines if '"POST /h1p/mode-500?' in line]
    assert request_lines, written  # urllib3's own record, really emitted
    assert '"POST /h1p/mode-500?token=***&team=*** HTTP/1.1" 500' in request_lines[0]
    assert any('"GET /files/a.mp3?X-Amz-Signature=*** HTTP/1.1" 500' in line for line in lines)
    assert any(
        f"download of {server}/h1p/mode-500?token=***&team=*** failed: what? x=1" in line
        for line in lines
    )


def test_the_filter_masks_them_too() -> None:
    record = logging.LogRecord(
        "urllib3.connectionpool", logging.DEBUG, __file__, 1,
        '%s://%s:%s "%s %s %s" %s %s',
        ("http", "127.0.0.1", 27102, "POST", f"/h?token={CANARY}", "HTTP/1.1", 500, 0),
        None,
    )  # fmt: skip
    RedactingFilter([]).filter(record)
    assert record.getMessage() == 'http://127.0.0.1:27102 "POST /h?token=*** HTTP/1.1" 500 0'
