#!/usr/bin/python3
"""A tiny gRPC server on raw bytes for the C gRPC client's tests.

Methods (service /t.T):
  Echo          returns the request
  Stream        request "N" or "N SIZE": N messages, each b"<i>" padded to SIZE bytes
  Fail          request "CODE MESSAGE": sends headers first, so the status is in trailers
  FailNow       request "CODE MESSAGE": fails before anything is sent (Trailers-Only)
  Sleep         request "SECONDS": sleeps, then returns b"late"
  Headers       returns the request headers it saw, one "name: value" per line,
                and "time-remaining: SECONDS" (from grpc-timeout; None without)
  Big           request "N": returns N bytes
With --token T every call must carry "authorization: Bearer T".
Prints "listening PORT" once it serves.
"""
import argparse
import sys
import time
from concurrent import futures

import grpc


def code_of(name):
    return grpc.StatusCode[name]


def echo(req, ctx):
    return req


def stream(req, ctx):
    parts = req.decode().split()
    n = int(parts[0])
    size = int(parts[1]) if len(parts) > 1 else 0
    for i in range(n):
        yield str(i).encode().ljust(size, b".")


def fail(req, ctx):
    code, _, msg = req.decode("utf-8").partition(" ")
    ctx.send_initial_metadata(())
    ctx.abort(code_of(code), msg)


def fail_now(req, ctx):
    code, _, msg = req.decode("utf-8").partition(" ")
    ctx.abort(code_of(code), msg)


def sleep(req, ctx):
    time.sleep(float(req.decode()))
    return b"late"


def headers(req, ctx):
    lines = ["%s: %s\n" % (k, v) for k, v in ctx.invocation_metadata()]
    lines.append("time-remaining: %s\n" % ctx.time_remaining())
    return "".join(lines).encode()


def big(req, ctx):
    return b"x" * int(req.decode())


UNARY = {"Echo": echo, "Fail": fail, "FailNow": fail_now, "Sleep": sleep,
         "Headers": headers, "Big": big}
STREAM = {"Stream": stream}


class Handler(grpc.GenericRpcHandler):
    def __init__(self, token):
        self.token = token

    def guard(self, fn):
        if not self.token:
            return fn

        def checked(req, ctx):
            md = dict(ctx.invocation_metadata())
            if md.get("authorization") != "Bearer " + self.token:
                ctx.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid token")
            return fn(req, ctx)
        return checked

    def service(self, details):
        svc, _, name = details.method.rpartition("/")
        if svc != "/t.T":
            return None
        if name in UNARY:
            return grpc.unary_unary_rpc_method_handler(self.guard(UNARY[name]))
        if name in STREAM:
            return grpc.unary_stream_rpc_method_handler(self.guard(STREAM[name]))
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--token")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--max-streams", type=int, default=0)
    ap.add_argument("--max-age-ms", type=int, default=0)
    args = ap.parse_args()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=64),
        handlers=[Handler(args.token)],
        options=[
            # The client pings while calls are in flight; let it.
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10),
            ("grpc.http2.max_ping_strikes", 0),
            ("grpc.max_receive_message_length", 16 * 1024 * 1024),
        ] + ([("grpc.max_concurrent_streams", args.max_streams)] if args.max_streams else [])
        + ([("grpc.max_connection_age_ms", args.max_age_ms),
            ("grpc.max_connection_age_grace_ms", 10000)] if args.max_age_ms else []),
    )
    addr = "127.0.0.1:%d" % args.port
    if args.tls_cert:
        with open(args.tls_key, "rb") as f:
            key = f.read()
        with open(args.tls_cert, "rb") as f:
            cert = f.read()
        server.add_secure_port(addr, grpc.ssl_server_credentials([(key, cert)]))
    else:
        server.add_insecure_port(addr)
    server.start()
    print("listening %d" % args.port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    sys.exit(main())
