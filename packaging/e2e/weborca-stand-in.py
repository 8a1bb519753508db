#!/usr/bin/env python3
"""A stand-in for WebORCA in the end-to-end test: like WebORCA, it reads
HTTP_PORT, SERVER_CRT, SERVER_PEM and CA_CRT from its environment (the unit
sources jma-receipt.conf), listens on every interface, and speaks TLS with
client certificates when the three keys are set, plain HTTP otherwise.
STAND_IN_BIND, when set, is the one address it listens on instead (the
fake-root tests listen on 127.0.0.1 only). STAND_IN_ROOT, when set, is the
folder the three files' paths are taken under (the fake root's)."""
import http.server
import os
import socket
import ssl

port = int(os.environ.get("HTTP_PORT") or "8000")
# stripped: a jma-receipt.conf with CRLF line ends, sourced by sh, leaves a CR at the end
crt, pem, ca = (os.environ.get(k, "").strip() for k in ("SERVER_CRT", "SERVER_PEM", "CA_CRT"))
mode = "https" if crt and pem and ca else "http"
under = os.environ.get("STAND_IN_ROOT", "")
if under:
    crt, pem, ca = (under + p if p.startswith("/") else p for p in (crt, pem, ca))
bind = os.environ.get("STAND_IN_BIND", "")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"weborca stand-in {mode} port {port}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET


class Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


server = (
    http.server.ThreadingHTTPServer((bind, port), Handler) if bind else Server(("::", port), Handler)
)
if mode == "https":
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, pem)
    ctx.load_verify_locations(ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
print(f"Server Mode: {mode.upper()} on [{bind or '::'}]:{port}", flush=True)
server.serve_forever()
