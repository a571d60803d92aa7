"""A real WebSocket upstream and client (PyPI `websockets`) for tests/e2e/websocket.rs.

  ws.py serve          echo server on 127.0.0.1, any path. Prints `PORT <n>`, then one
                       `HANDSHAKE <json>` line per handshake it received (its path and headers,
                       names lower-cased) and `CLOSED <code>` when a connection's close
                       handshake ends. A text message `close-me` is answered with a close frame
                       (code 4001) instead of an echo. A handshake for /forbidden... is
                       answered 403. Runs until stdin closes.
  ws.py serve-tls CERT KEY
                       the same over TLS (ALPN offers h2 and http/1.1; each HANDSHAKE line
                       says which one the connection chose, `alpn`).
  ws.py client URL     reads one JSON object per line on stdin, each a connection to open:
                         {"headers": [[name, value], ...], "mode": "echo" | "hold",
                          "url": another URL (optional)}
                       and prints one JSON result per line:
                         refused:  {"status": 401, "headers": {...}}
                         echo:     {"status": 101, "text": ..., "binary": ..., "big": ...,
                                    "close_code": <code the client saw>}
                         hold:     prints {"open": true}, then waits until the connection ends
                                   and prints {"closed": true, "code": <code or null>}
"""

import json
import ssl
import sys
import threading

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from websockets.sync.server import serve

MAX_SIZE = 2 * 1024 * 1024
BIG = bytes(range(256)) * 4096  # 1 MiB


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def run_server(tls=None):
    def process_request(connection, request):
        headers = {}
        for name, value in request.headers.raw_items():
            headers.setdefault(name.lower(), []).append(value)
        alpn = None
        if tls is not None:
            alpn = connection.socket.selected_alpn_protocol()
        out("HANDSHAKE " + json.dumps({"path": request.path, "headers": headers,
                                       "alpn": alpn}))
        if request.path.startswith("/forbidden"):
            return connection.respond(403, "not for you\n")
        return None

    def handler(ws):
        try:
            for message in ws:
                if message == "close-me":
                    ws.close(4001, "asked to")
                    break
                ws.send(message)
        except ConnectionClosed:
            pass
        out("CLOSED %s" % (ws.close_code,))

    ssl_context = None
    if tls is not None:
        ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_context.load_cert_chain(tls[0], tls[1])
        ssl_context.set_alpn_protocols(["h2", "http/1.1"])
    server = serve(handler, "127.0.0.1", 0, process_request=process_request, max_size=MAX_SIZE,
                   ping_interval=None, ssl=ssl_context)
    out("PORT %d" % server.socket.getsockname()[1])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()
    server.shutdown()


def one_client(url, spec):
    headers = [tuple(h) for h in spec.get("headers", [])]
    try:
        ws = connect(spec.get("url", url), additional_headers=headers, max_size=MAX_SIZE, open_timeout=10,
                     ping_interval=None, close_timeout=10)
    except InvalidStatus as e:
        return {"status": e.response.status_code,
                "headers": {k.lower(): v for k, v in e.response.headers.raw_items()}}
    with ws:
        return exchange(ws, spec)


def exchange(ws, spec):
    mode = spec.get("mode", "echo")
    if mode == "hold":
        out(json.dumps({"open": True, "status": 101}))
        try:
            ws.recv()
            code = ws.close_code
        except ConnectionClosed as e:
            code = e.rcvd.code if e.rcvd is not None else None
        return {"closed": True, "code": code}
    result = {"status": 101,
              "response_headers": {k.lower(): v for k, v in ws.response.headers.raw_items()}}
    ws.send("hello")
    result["text"] = ws.recv(timeout=10)
    ws.send(b"\x00\x01\xfe\xff")
    got = ws.recv(timeout=10)
    result["binary"] = list(got) if isinstance(got, bytes) else got
    ws.send(BIG)
    got = ws.recv(timeout=30)
    result["big"] = isinstance(got, bytes) and got == BIG
    if spec.get("server_close"):
        ws.send("close-me")
        try:
            ws.recv(timeout=10)
        except ConnectionClosed as e:
            result["close_code"] = e.rcvd.code if e.rcvd is not None else None
    else:
        ws.close(1000, "done")
        result["close_code"] = ws.close_code
    return result


def run_client(url):
    for line in sys.stdin:
        if line.strip():
            out(json.dumps(one_client(url, json.loads(line))))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        run_server()
    elif sys.argv[1] == "serve-tls":
        run_server((sys.argv[2], sys.argv[3]))
    else:
        run_client(sys.argv[2])
