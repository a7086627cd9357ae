"""Loopback webhook receiver: answers 200 at once and records when each delivery arrived.

``python -m bench.receiver PORT OUT``: on SIGTERM writes OUT as JSON lines
{"event_id", "referral_id", "event_type", "t"} (t = time.time() at receipt of the full body).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


async def serve(port: int, out: Path) -> None:
    seen: list[dict[str, object]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                body = await reader.readexactly(length) if length else b""
                received = time.time()
                writer.write(_OK)
                try:
                    data = json.loads(body)
                    seen.append(
                        {
                            "event_id": data.get("event_id"),
                            "referral_id": data.get("referral_id"),
                            "event_type": data.get("event_type"),
                            "t": received,
                        }
                    )
                except ValueError:
                    pass
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with server:
        await stop.wait()
    out.write_text("".join(json.dumps(s) + "\n" for s in seen))


def main() -> None:
    asyncio.run(serve(int(sys.argv[1]), Path(sys.argv[2])))


if __name__ == "__main__":
    main()
