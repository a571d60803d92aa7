"""A real gRPC server and client (PyPI grpcio) for tests/e2e/grpc.rs.

No protobuf: messages are raw bytes (grpcio passes them through when no serializer is given),
so the test needs grpcio alone.

  python3 echo.py serve            listens on 127.0.0.1:0 (h2c), prints "PORT <n>", serves until
                                   stdin closes: echo.v1.Echo/Say (unary: "hello " + request)
                                   and echo.v1.Echo/Count (server streaming: N messages "0".."N-1"),
                                   each with the trailing metadata x-echo-trailer: yes
  python3 echo.py call TARGET      reads one JSON object per line on stdin
                                   {"method": "/echo.v1.Echo/Say", "kind": "unary"|"stream",
                                    "request": "...", "metadata": [[k, v], ...]}
                                   and prints one JSON object per call: code, details, messages,
                                   trailing metadata
"""

import json
import sys
from concurrent import futures

import grpc

TRAILER = (("x-echo-trailer", "yes"),)


def record(name):
    # Every call the service gets, for the test to compare with what it sent.
    print(f"CALL {name}", flush=True)


def say(request, context):
    record("Say")
    context.set_trailing_metadata(TRAILER)
    seen = dict(context.invocation_metadata())
    # What the gateway forwarded: the proof must never reach the service.
    proof = "with-dpop" if "dpop" in seen else "no-dpop"
    return b"hello " + request + b" " + proof.encode()


def count(request, context):
    record("Count")
    context.set_trailing_metadata(TRAILER)
    for i in range(int(request.decode())):
        yield str(i).encode()


def serve():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.method_handlers_generic_handler(
        "echo.v1.Echo",
        {
            "Say": grpc.unary_unary_rpc_method_handler(say),
            "Count": grpc.unary_stream_rpc_method_handler(count),
        },
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"PORT {port}", flush=True)
    sys.stdin.read()
    server.stop(0)


def call(target):
    with grpc.insecure_channel(target) as channel:
        for line in sys.stdin:
            if not line.strip():
                continue
            spec = json.loads(line)
            metadata = [tuple(kv) for kv in spec["metadata"]]
            request = spec["request"].encode()
            out = {"messages": []}
            try:
                if spec["kind"] == "unary":
                    rpc = channel.unary_unary(spec["method"])
                    response, c = rpc.with_call(request, metadata=metadata, timeout=10)
                    out["messages"].append(response.decode())
                else:
                    rpc = channel.unary_stream(spec["method"])
                    c = rpc(request, metadata=metadata, timeout=10)
                    for message in c:
                        out["messages"].append(message.decode())
                out["code"] = c.code().name
                out["details"] = c.details()
                out["trailing"] = [list(kv) for kv in c.trailing_metadata() or ()]
            except grpc.RpcError as e:
                out["code"] = e.code().name
                out["details"] = e.details()
                out["trailing"] = [list(kv) for kv in e.trailing_metadata() or ()]
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve()
    else:
        call(sys.argv[2])
