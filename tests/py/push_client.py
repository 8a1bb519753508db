"""A push client written the way push-exchanger talks to WebORCA's push API.

It connects to wss://HOST:PORT/ws with a client certificate from PEM files,
the headers X-GINBEE-TENANT-ID and Authorization: Basic, and no subprotocol,
then obeys commands read from stdin, one per line, and reports on stdout as
one JSON object per line (the Rust test drives it):

    subscribe          send {"command":"subscribe","req.id":<uuid>,"event":"*"}
                       and report the next two messages
    recv               report the next message
    wait_close         wait for the connection to end and report how
    close              close from the client side (code 1000) and exit

Reports: {"connected": {...}}, {"sent": ...}, {"recv": ...},
{"closed": {...}}, {"error": ...}. Every wait is bounded by --timeout.

Usage: push_client.py URL --ca CA --cert CRT --key KEY --user U:P [--tenant 1]
"""

import argparse
import asyncio
import base64
import json
import ssl
import sys
import uuid

import websockets
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK


def report(obj):
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def closed_info(exc):
    rcvd = exc.rcvd
    return {
        "clean": isinstance(exc, ConnectionClosedOK),
        "close_frame_received": rcvd is not None,
        "code": rcvd.code if rcvd else None,
        "reason": rcvd.reason if rcvd else None,
        "exception": type(exc).__name__,
        "detail": str(exc),
    }


async def read_line():
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, sys.stdin.readline)


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--ca", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--user", required=True, help="USER:PASSWORD for Basic auth")
    p.add_argument("--tenant", default="1")
    p.add_argument("--server-name", default=None)
    p.add_argument("--timeout", type=float, default=15.0)
    a = p.parse_args()

    ctx = ssl.create_default_context(cafile=a.ca)
    ctx.load_cert_chain(a.cert, a.key)
    auth = base64.b64encode(a.user.encode()).decode()
    headers = {
        "X-GINBEE-TENANT-ID": a.tenant,
        "Authorization": "Basic " + auth,
    }
    extra = {"server_hostname": a.server_name} if a.server_name else {}
    try:
        ws = await asyncio.wait_for(
            websockets.connect(
                a.url,
                ssl=ctx,
                additional_headers=headers,
                # push-exchanger sends no subprotocol and no keepalive of its own
                # during the test's quiet period
                ping_interval=None,
                open_timeout=a.timeout,
                close_timeout=a.timeout,
                **extra,
            ),
            a.timeout,
        )
    except Exception as e:  # report, the test decides
        report({"error": f"connect: {type(e).__name__}: {e}"})
        return 1
    report(
        {
            "connected": {
                "status": ws.response.status_code,
                "subprotocol": ws.subprotocol,
                "tls": ws.transport.get_extra_info("ssl_object").version(),
            }
        }
    )

    async def recv():
        try:
            msg = await asyncio.wait_for(ws.recv(), a.timeout)
        except ConnectionClosed as e:
            report({"closed": closed_info(e)})
            return False
        except asyncio.TimeoutError:
            report({"error": f"no message within {a.timeout}s"})
            return False
        report({"recv": msg if isinstance(msg, str) else msg.hex()})
        return True

    while True:
        line = (await read_line()).strip()
        if not line:  # stdin closed: the test is gone
            await ws.close()
            return 0
        if line == "subscribe":
            msg = {"command": "subscribe", "req.id": str(uuid.uuid4()), "event": "*"}
            try:
                await ws.send(json.dumps(msg))
            except ConnectionClosed as e:
                report({"closed": closed_info(e)})
                continue
            report({"sent": msg})
            if await recv():
                await recv()
        elif line == "recv":
            await recv()
        elif line == "wait_close":
            try:
                while True:
                    msg = await asyncio.wait_for(ws.recv(), a.timeout)
                    report({"recv": msg if isinstance(msg, str) else msg.hex()})
            except ConnectionClosed as e:
                report({"closed": closed_info(e)})
            except asyncio.TimeoutError:
                report({"error": f"still open after {a.timeout}s"})
        elif line == "close":
            await ws.close()
            report({"closed": {"clean": True, "by": "client"}})
            return 0
        else:
            report({"error": f"unknown command {line!r}"})


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
