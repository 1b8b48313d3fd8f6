"""Bearer-token check for every client RPC, with the real broker's status texts."""
import grpc


def _denied(handler, message):
    async def unary(request, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    async def stream(request, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        yield  # never reached: makes this an async generator like the real handler

    kw = dict(request_deserializer=handler.request_deserializer,
              response_serializer=handler.response_serializer)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(stream, **kw)
    return grpc.unary_unary_rpc_method_handler(unary, **kw)


class TokenInterceptor(grpc.aio.ServerInterceptor):
    """A shared-secret compare stands in for the real broker's JWT validation."""

    def __init__(self, token):
        self.token = token

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None:
            return None
        value = None
        for key, val in details.invocation_metadata or ():
            if key == "authorization":
                value = val
        if value is None:
            return _denied(handler, "Authentication credentials are missing")
        if not (value.startswith("Bearer ") or value.startswith("bearer ")):
            return _denied(handler, "Authentication metadata is invalid")
        if value[7:] != self.token:
            return _denied(handler, "Invalid token")
        return handler
