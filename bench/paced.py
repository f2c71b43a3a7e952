"""Latency at a fixed request rate (open loop, as wrk2 measures it).

``python paced.py URL --rate 1000 --connections 10 --seconds 10 [--cert C --key K]``
sends HTTP/1.1 keep-alive GETs at ``rate`` requests per second spread over
``connections`` connections, each request due at a fixed time. When a request goes out
late because the previous response on its connection came late, its latency counts from
when it was due (so a stall shows up in the percentiles instead of silently lowering the
rate); otherwise from when it was sent (the event loop's timers are coarse). Prints one JSON object: the rate
reached and the p50/p90/p99/max latency in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import time
from urllib.parse import urlsplit


async def _connection(  # noqa: PLR0917
    host: str, port: int, path: str, context: ssl.SSLContext | None, interval: float,
    start: float, end: float, latencies: list[float], errors: list[str],
) -> None:  # fmt: skip
    reader, writer = await asyncio.open_connection(host, port, ssl=context)
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    due = start
    clock = time.perf_counter  # the loop's clock may count whole milliseconds only
    try:
        free_at = start
        while due < end:
            delay = due - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            # Late because the previous response was late: count from when this request
            # was due. Late only by the timer's granularity: count from the send.
            sent = due if free_at > due else clock()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            free_at = clock()
            latencies.append(free_at - sent)
            due += interval
    except (OSError, asyncio.IncompleteReadError) as exc:
        errors.append(repr(exc))
    finally:
        writer.close()


async def _run(args: argparse.Namespace) -> dict[str, object]:
    url = urlsplit(args.url)
    context = None
    if url.scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if args.cert:
            context.load_cert_chain(args.cert, args.key)
        context.set_alpn_protocols(["http/1.1"])
    host, port = url.hostname or "127.0.0.1", url.port or (443 if context else 80)
    interval = args.connections / args.rate
    start = time.perf_counter() + 0.5
    end = start + args.seconds
    latencies: list[float] = []
    errors: list[str] = []
    await asyncio.gather(
        *(
            _connection(
                host,
                port,
                url.path or "/",
                context,
                interval,
                start + index * interval / args.connections,
                end,
                latencies,
                errors,
            )
            for index in range(args.connections)
        )
    )
    latencies.sort()

    def percentile(p: float) -> float:
        if not latencies:
            return float("nan")
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 3)

    return {
        "requests": len(latencies),
        "rate": round(len(latencies) / args.seconds, 1),
        "p50_ms": percentile(0.50),
        "p90_ms": percentile(0.90),
        "p99_ms": percentile(0.99),
        "max_ms": round(latencies[-1] * 1000, 3) if latencies else None,
        "errors": len(errors),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args()
    try:
        import uvloop

        result = uvloop.run(_run(args))
    except ImportError:
        result = asyncio.run(_run(args))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
