"""Command line, gRPC services and process lifecycle of the Danube-compatible test broker."""
import argparse
import asyncio
import logging
import os
import signal
import sys

import grpc

import protos
from auth import TokenInterceptor
from proxy import BrokerUrlRecorder
from schemas import SchemaRegistry
from storage import Storage
from subscriptions import END
from topics import Broker, BrokerError

log = logging.getLogger("danube-broker")
# tonic's default limit on a decoded request; grpcio's own is raised past it so that the
# refusal is tonic's (OUT_OF_RANGE, its words), not grpcio's RESOURCE_EXHAUSTED.
MAX_DECODED = 4 * 1024 * 1024


def _identity(b):
    return b


def _guard(fn):
    """Turns BrokerError into the call's gRPC status. The broker's state is touched only
    from the event loop's thread, so handlers run to completion without awaiting."""

    async def call(request, context):
        try:
            return fn(request, context)
        except BrokerError as e:
            await context.abort(e.code, e.text)

    return call


def _unary(fn, req_cls, resp_cls):
    return grpc.unary_unary_rpc_method_handler(_guard(fn), request_deserializer=req_cls.FromString,
                                               response_serializer=resp_cls.SerializeToString)


class Services:
    def __init__(self, broker, schemas, api, sch, adm, connect_url=None):
        self.b = broker
        self.connect_url = connect_url
        self.schemas = schemas
        self.api = api
        self.sch = sch
        self.adm = adm

    # ---- danube.Discovery
    def lookup(self, req, ctx):
        url = self.b.lookup(req.topic)
        # Like the real broker with a proxy URL configured: clients connect there, url stays the identity.
        connect = self.connect_url or url
        return self.api.TopicLookupResponse(request_id=req.request_id,
                                            response_type=self.api.TopicLookupResponse.Connect,
                                            connect_url=connect, broker_url=url, proxy=connect != url)

    def partitions(self, req, ctx):
        return self.api.TopicPartitionsResponse(request_id=req.request_id, partitions=self.b.partitions(req.topic))

    # ---- danube.ProducerService
    def create_producer(self, req, ctx):
        pid = self.b.create_producer(req)
        return self.api.ProducerResponse(request_id=req.request_id, producer_id=pid,
                                         producer_name=req.producer_name)

    def send_message(self, raw, ctx):
        if len(raw) > MAX_DECODED:
            raise BrokerError(grpc.StatusCode.OUT_OF_RANGE,
                              "Error, decoded message length too large: found %d bytes, the limit is: "
                              "%d bytes" % (len(raw), MAX_DECODED))
        return self.api.MessageResponse(request_id=self.b.send(raw))

    # ---- danube.ConsumerService
    def subscribe(self, req, ctx):
        cid = self.b.subscribe(req)
        return self.api.ConsumerResponse(request_id=req.request_id, consumer_id=cid,
                                         consumer_name=req.consumer_name)

    async def receive(self, req, ctx):
        try:
            c, q, gen = self.b.open_stream(req.consumer_id)
        except BrokerError as e:
            await ctx.abort(e.code, e.text)
        try:
            while True:
                item = await q.get()
                if item is END:
                    return
                yield item
        finally:
            # Also runs when the client goes away (the call's task is cancelled).
            self.b.close_stream(c, gen)

    def ack(self, req, ctx):
        self.b.ack(req)
        return self.api.AckResponse(request_id=req.request_id)

    def nack(self, req, ctx):
        self.b.nack(req)
        return self.api.NackResponse(request_id=req.request_id)

    # ---- danube.HealthCheck
    def health(self, req, ctx):
        if req.client not in (0, 1):
            raise BrokerError(grpc.StatusCode.INVALID_ARGUMENT, "Invalid client type %d" % req.client)
        ok = self.b.health(req.client, req.id)
        st = self.api.HealthCheckResponse
        return st(status=st.OK if ok else st.CLOSE)

    # ---- danube_schema.SchemaRegistry
    def _schema_response(self, subject, s, v):
        return self.sch.GetSchemaResponse(
            schema_id=s["id"], version=v["version"], subject=subject, schema_type=v["type"],
            schema_definition=v["definition"], description=v["description"], created_at=v["created_at"],
            created_by=v["created_by"], tags=v["tags"], fingerprint=v["fingerprint"],
            compatibility_mode=s["compat"])

    def register_schema(self, req, ctx):
        sid, version, new, fp = self.schemas.register(req)
        return self.sch.RegisterSchemaResponse(schema_id=sid, version=version, is_new_version=new, fingerprint=fp)

    def get_schema(self, req, ctx):
        version = req.version if req.HasField("version") else None
        return self._schema_response(*self.schemas.get(req.schema_id, version))

    def get_latest_schema(self, req, ctx):
        return self._schema_response(*self.schemas.latest(req.subject))

    def list_versions(self, req, ctx):
        sid, versions = self.schemas.versions(req.subject)
        return self.sch.ListVersionsResponse(versions=[
            self.sch.SchemaVersionInfo(version=v["version"], created_at=v["created_at"], created_by=v["created_by"],
                                       description=v["description"], fingerprint=v["fingerprint"], schema_id=sid)
            for v in versions])

    def check_compatibility(self, req, ctx):
        return self.sch.CheckCompatibilityResponse(is_compatible=True)

    def set_compatibility(self, req, ctx):
        self.schemas.set_compat(req.subject, req.compatibility_mode)
        return self.sch.SetCompatibilityModeResponse(success=True, message="ok")

    def list_subjects(self, req, ctx):
        return self.sch.ListSubjectsResponse(subjects=[
            self.sch.SubjectSummary(subject=name, schema_type=s["type"], latest_version=len(s["versions"]),
                                    compatibility_mode=s["compat"], schema_id=s["id"], tags=s["tags"])
            for name, s in self.schemas.list()])

    # ---- danube_admin.TopicAdmin
    def admin_create(self, req, ctx):
        self.b.create(req.name, req.dispatch_strategy == self.adm.Reliable)
        return self.adm.TopicResponse(success=True)

    def admin_create_partitioned(self, req, ctx):
        self.b.create_partitioned(req.base_name, req.partitions, req.dispatch_strategy == self.adm.Reliable)
        return self.adm.TopicResponse(success=True)

    def admin_delete(self, req, ctx):
        self.b.delete_topic(req.name)
        return self.adm.TopicResponse(success=True)

    def admin_unload(self, req, ctx):
        self.b.unload_topic(req.name)
        return self.adm.TopicResponse(success=True)

    def admin_subscriptions(self, req, ctx):
        _, subs, _ = self.b.describe(req.name)
        return self.adm.SubscriptionListResponse(subscriptions=subs)

    def admin_describe(self, req, ctx):
        reliable, subs, subject = self.b.describe(req.name)
        r = self.adm.DescribeTopicResponse(name=req.name, subscriptions=subs, broker_id="1",
                                           delivery="Reliable" if reliable else "NonReliable")
        if subject is not None:
            r.schema_subject = subject
        return r

    def client_handlers(self):
        a, s = self.api, self.sch
        return [
            grpc.method_handlers_generic_handler("danube.Discovery", {
                "TopicLookup": _unary(self.lookup, a.TopicLookupRequest, a.TopicLookupResponse),
                "TopicPartitions": _unary(self.partitions, a.TopicLookupRequest, a.TopicPartitionsResponse),
            }),
            grpc.method_handlers_generic_handler("danube.ProducerService", {
                "CreateProducer": _unary(self.create_producer, a.ProducerRequest, a.ProducerResponse),
                "SendMessage": grpc.unary_unary_rpc_method_handler(
                    _guard(self.send_message), request_deserializer=_identity,
                    response_serializer=a.MessageResponse.SerializeToString),
            }),
            grpc.method_handlers_generic_handler("danube.ConsumerService", {
                "Subscribe": _unary(self.subscribe, a.ConsumerRequest, a.ConsumerResponse),
                # Messages are kept serialized: the stream sends the bytes as they are.
                "ReceiveMessages": grpc.unary_stream_rpc_method_handler(
                    self.receive, request_deserializer=a.ReceiveRequest.FromString, response_serializer=_identity),
                "Ack": _unary(self.ack, a.AckRequest, a.AckResponse),
                "Nack": _unary(self.nack, a.NackRequest, a.NackResponse),
            }),
            grpc.method_handlers_generic_handler("danube.HealthCheck", {
                "HealthCheck": _unary(self.health, a.HealthCheckRequest, a.HealthCheckResponse),
            }),
            grpc.method_handlers_generic_handler("danube_schema.SchemaRegistry", {
                "RegisterSchema": _unary(self.register_schema, s.RegisterSchemaRequest, s.RegisterSchemaResponse),
                "GetSchema": _unary(self.get_schema, s.GetSchemaRequest, s.GetSchemaResponse),
                "GetLatestSchema": _unary(self.get_latest_schema, s.GetLatestSchemaRequest, s.GetSchemaResponse),
                "ListVersions": _unary(self.list_versions, s.ListVersionsRequest, s.ListVersionsResponse),
                "CheckCompatibility": _unary(self.check_compatibility, s.CheckCompatibilityRequest,
                                             s.CheckCompatibilityResponse),
                "SetCompatibilityMode": _unary(self.set_compatibility, s.SetCompatibilityModeRequest,
                                               s.SetCompatibilityModeResponse),
                "ListSubjects": _unary(self.list_subjects, s.ListSubjectsRequest, s.ListSubjectsResponse),
            }),
        ]

    def admin_handlers(self):
        d = self.adm
        return [grpc.method_handlers_generic_handler("danube_admin.TopicAdmin", {
            "CreateTopic": _unary(self.admin_create, d.NewTopicRequest, d.TopicResponse),
            "CreatePartitionedTopic": _unary(self.admin_create_partitioned, d.PartitionedTopicRequest,
                                             d.TopicResponse),
            "DeleteTopic": _unary(self.admin_delete, d.TopicRequest, d.TopicResponse),
            "UnloadTopic": _unary(self.admin_unload, d.TopicRequest, d.TopicResponse),
            "ListSubscriptions": _unary(self.admin_subscriptions, d.TopicRequest, d.SubscriptionListResponse),
            "DescribeTopic": _unary(self.admin_describe, d.DescribeTopicRequest, d.DescribeTopicResponse),
        })]


def parse_args(argv):
    p = argparse.ArgumentParser(prog="danube-broker", description="Danube-compatible test broker")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=6650, help="client port (0: a free one)")
    p.add_argument("--admin-port", type=int, default=50051, help="admin port (0: a free one)")
    p.add_argument("--data-dir", help="persist reliable topics and cursors here")
    p.add_argument("--port-file", help="also write 'PORT ADMIN_PORT' to this file")
    p.add_argument("--py-dir", help="directory holding danube/*_pb2.py")
    p.add_argument("--token", help="require 'authorization: Bearer TOKEN' on every client call")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--ack-timeout-ms", type=int, default=30000)
    p.add_argument("--nack-delay-ms", type=int, default=1000)
    p.add_argument("--max-unacked", type=int, default=10)
    p.add_argument("--live-feed-capacity", type=int, default=0, metavar="N",
                   help="a new subscription more than N messages behind skips ahead, as the real "
                        "broker's 256-entry live feed does (0: off)")
    p.add_argument("--connect-url", help="lookups answer this connect_url (proxy mode when it differs)")
    p.add_argument("--headers-log", help="append 'METHOD VALUE' per distinct x-danube-broker-url received")
    args = p.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    return args


def _bind(server, host, port, creds):
    addr = "%s:%d" % (host, port)
    bound = server.add_secure_port(addr, creds) if creds else server.add_insecure_port(addr)
    if not bound:
        raise RuntimeError("cannot listen on " + addr)
    return bound


def main(argv):
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="danube-broker: %(message)s")
    args = parse_args(argv)
    return asyncio.run(serve(args))


async def serve(args):
    api, sch, adm = protos.load(args.py_dir)
    creds = None
    if args.tls_cert:
        with open(args.tls_key, "rb") as k, open(args.tls_cert, "rb") as c:
            creds = grpc.ssl_server_credentials([(k.read(), c.read())])

    # so_reuseport off: a restart on a port someone else holds must fail, not share it.
    options = [("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", 4 * MAX_DECODED)]
    recorder = BrokerUrlRecorder(args.headers_log)
    interceptors = [recorder] + ([TokenInterceptor(args.token)] if args.token else [])
    server = grpc.aio.server(interceptors=interceptors, options=options)
    admin = grpc.aio.server(options=options)
    try:
        port = _bind(server, args.host, args.port, creds)
        aport = _bind(admin, args.host, args.admin_port, None)
    except RuntimeError as e:
        log.error("%s", e)
        recorder.close()
        return 1

    url = "%s://%s:%d" % ("https" if creds else "http", args.host, port)
    storage = Storage(args.data_dir)
    schemas = SchemaRegistry()
    broker = Broker(url, storage, args, api, schemas)
    svc = Services(broker, schemas, api, sch, adm, args.connect_url)
    server.add_generic_rpc_handlers(svc.client_handlers())
    admin.add_generic_rpc_handlers(svc.admin_handlers())
    await server.start()
    await admin.start()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d %d\n" % (port, aport))
        os.rename(tmp, args.port_file)
    print("danube-broker listening on %s:%d admin %s:%d" % (args.host, port, args.host, aport), flush=True)
    log.info("serving %s (data dir: %s)", url, args.data_dir or "none")

    while not stop.is_set():
        broker.tick()
        try:
            await asyncio.wait_for(stop.wait(), 0.02)
        except asyncio.TimeoutError:
            pass
    log.info("stopping")
    await server.stop(0.5)
    await admin.stop(0)
    storage.close()
    recorder.close()
    return 0
