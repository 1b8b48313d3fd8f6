"""Records the x-danube-broker-url metadata clients send in proxy mode (--connect-url), so
tests can check on which calls it arrives and with what value."""
import logging

import grpc

log = logging.getLogger("danube-broker")

HEADER = "x-danube-broker-url"


class BrokerUrlRecorder(grpc.aio.ServerInterceptor):
    """Notes each distinct (method, value) once: on stderr as
    'x-danube-broker-url on METHOD: VALUE' and, with a file, as a 'METHOD VALUE' line.
    The real broker ignores the header; so does this one beyond recording it."""

    def __init__(self, path):
        self.seen = set()
        self.file = open(path, "a", encoding="utf-8") if path else None

    async def intercept_service(self, continuation, details):
        for key, val in details.invocation_metadata or ():
            if key == HEADER:
                self._note(details.method.rsplit("/", 1)[-1], val)
        return await continuation(details)

    def _note(self, method, value):
        if (method, value) in self.seen:
            return
        self.seen.add((method, value))
        log.info("%s on %s: %s", HEADER, method, value)
        if self.file:
            self.file.write("%s %s\n" % (method, value))
            self.file.flush()

    def close(self):
        if self.file:
            self.file.close()
