"""A tiny HTTP/1.1 keep-alive server for the batch benchmark: answers every POST after a fixed delay.

Run as its own process (``python benchmarks/server.py --delay-ms 20``) so it never shares a GIL with the
client under test; it prints ``PORT <n>`` on stdout once it listens on 127.0.0.1. It is a bare
``asyncio.Protocol`` on uvloop (when installed): no framework, one timer per request, so on a 2-core machine
it serves tens of thousands of requests per second and is never the bottleneck.

Any POST path is accepted (the hook posts to ``/model/{id}/production/predict``; the Rust client posts to
``base_url + url_path``). The answer echoes the request body, so callers can check order:
``{"ok":true,"echo":<body>}``. Bodies containing ``"fail"`` get a 422; bodies containing ``"flaky"`` get a
503 with ``Retry-After: 0`` the first time that exact body is seen, then a 200.

``POST .../v1/embeddings`` (OpenAI's shape, as Baseten's ``/sync/v1/embeddings``) answers
``{"object":"list","data":[{"object":"embedding","embedding":[...],"index":i}],"model":...,"usage":{...}}``
with a small vector derived from each text (:func:`vector`), so callers can check every text's vector and
its order.

``--capacity N``: at most N requests are served at once; a request that arrives while N are in flight is
answered 503 at once (no ``Retry-After``), as an overloaded deployment's load balancer does. The client is
not told N. ``GET /__stats`` answers ``{"served", "rejected", "peak_inflight"}`` (counted by the server).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import zlib

_REASONS = {
    200: b"OK",
    422: b"Unprocessable Entity",
    503: b"Service Unavailable",
    400: b"Bad Request",
    404: b"Not Found",
}


DIMENSIONS = 4


def vector(text: str) -> list[float]:
    """The embedding the server gives ``text``: its length and three bytes of its CRC-32 (exact in JSON)."""
    crc = zlib.crc32(text.encode())
    return [float(len(text)), float(crc & 0xFF), float((crc >> 8) & 0xFF), float((crc >> 16) & 0xFF)]


def embeddings(body: bytes) -> tuple[int, bytes, bytes]:
    """An OpenAI embeddings answer for ``{"input": [...] | "...", "model": ...}``."""
    try:
        req = json.loads(body)
        texts = [req["input"]] if isinstance(req["input"], str) else list(req["input"])
    except (ValueError, KeyError, TypeError):
        return 400, b'{"error":"expected {"input": [...], "model": ...}"}', b""
    tokens = sum(len(t.split()) for t in texts)
    data = [{"object": "embedding", "embedding": vector(t), "index": i} for i, t in enumerate(texts)]
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    answer = {"object": "list", "data": data, "model": req.get("model", ""), "usage": usage}
    return 200, json.dumps(answer, separators=(",", ":")).encode(), b""


class _Http(asyncio.Protocol):
    delay = 0.02
    seen_flaky: set[bytes] = set()
    served = 0
    capacity = 0  # 0: no limit
    inflight = 0
    peak_inflight = 0
    rejected = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end]
            length = 0
            lower = head.lower()
            i = lower.find(b"content-length:")
            if i >= 0:
                j = lower.find(b"\r\n", i)
                length = int(lower[i + 15 : j if j >= 0 else len(lower)])
            total = end + 4 + length
            if len(self.buf) < total:
                return
            body = self.buf[end + 4 : total]
            self.buf = self.buf[total:]
            close = b"connection: close" in lower
            line = head[: head.find(b"\r\n")]
            path = line.split(b" ")[1].split(b"?")[0] if line.count(b" ") >= 2 else b""
            if line.startswith(b"GET ") and path == b"/__stats":
                stats = {"served": _Http.served, "rejected": _Http.rejected, "peak_inflight": _Http.peak_inflight}
                self.reply(200, json.dumps(stats).encode(), b"", close, counted=False)
                continue
            if _Http.capacity and _Http.inflight >= _Http.capacity:
                _Http.rejected += 1
                self.reply(503, b'{"error":"over capacity"}', b"", close, counted=False)
                continue
            if line.startswith(b"POST ") and path.endswith(b"/predict"):
                status, payload, extra = self.answer(body)
            elif line.startswith(b"POST ") and path.endswith(b"/v1/embeddings"):
                status, payload, extra = embeddings(body)
            else:
                status, payload, extra = 404, b'{"error":"only POST .../predict and .../v1/embeddings"}', b""
            _Http.inflight += 1
            _Http.peak_inflight = max(_Http.peak_inflight, _Http.inflight)
            if self.delay > 0:
                asyncio.get_running_loop().call_later(self.delay, self.reply, status, payload, extra, close)
            else:
                self.reply(status, payload, extra, close)

    def answer(self, body: bytes) -> tuple[int, bytes, bytes]:
        if b'"fail"' in body:
            return 422, b'{"error":"bad input"}', b""
        if b'"flaky"' in body and body not in self.seen_flaky:
            self.seen_flaky.add(body)
            return 503, b'{"error":"try again"}', b"Retry-After: 0\r\n"
        return 200, b'{"ok":true,"echo":' + (body or b"null") + b"}", b""

    def reply(self, status: int, payload: bytes, extra: bytes, close: bool, counted: bool = True) -> None:
        if counted:
            _Http.inflight -= 1
        if self.t.is_closing():
            return
        _Http.served += counted
        self.t.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s%s\r\n%s"
            % (
                status,
                _REASONS.get(status, b"X"),
                len(payload),
                extra,
                b"Connection: close\r\n" if close else b"",
                payload,
            )
        )
        if close:
            self.t.close()

    def connection_lost(self, exc: Exception | None) -> None:
        pass


async def _main(port: int, delay_ms: float, capacity: int) -> None:
    _Http.delay = delay_ms / 1000.0
    _Http.capacity = capacity
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Http, "127.0.0.1", port, backlog=4096, reuse_address=True)
    print("PORT", server.sockets[0].getsockname()[1], flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--delay-ms", type=float, default=20.0)
    p.add_argument("--capacity", type=int, default=0, help="requests served at once; above it a 503 (0: no limit)")
    a = p.parse_args()
    try:
        import uvloop
    except ImportError:  # plain asyncio is fast enough too, just less so
        asyncio.run(_main(a.port, a.delay_ms, a.capacity))
    else:
        uvloop.run(_main(a.port, a.delay_ms, a.capacity))


if __name__ == "__main__":
    sys.exit(main())
