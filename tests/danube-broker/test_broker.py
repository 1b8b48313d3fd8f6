#!/usr/bin/python3
"""Self-test of the Danube-compatible test broker: the status codes, texts and delivery
semantics every C integration test relies on. Run: /usr/bin/python3 test_broker.py"""
import os
import queue
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import protos  # noqa: E402

api, sch, adm = protos.load(os.environ.get("DC_PY_DIR"))
SC = grpc.StatusCode
ExT, ShT, FoT, KsT = 0, 1, 2, 3


def offsets(msgs):
    return [m.msg_id.topic_offset for m in msgs]


class Broker:
    def __init__(self, *args, data_dir=None):
        self.args = list(args)
        self.data_dir = data_dir
        self.port = 0
        self.aport = 0
        self.start()

    def start(self):
        argv = ["/usr/bin/python3", os.path.join(HERE, "danube-broker"), "--port", str(self.port),
                "--admin-port", str(self.aport)] + self.args
        if self.data_dir:
            argv += ["--data-dir", self.data_dir]
        deadline = time.monotonic() + 20
        while True:
            self.log = tempfile.TemporaryFile()
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log)
            line = b""
            while time.monotonic() < deadline and not line.endswith(b"\n"):
                r, _, _ = select.select([self.proc.stdout], [], [], 0.1)
                if r:
                    c = self.proc.stdout.read1(256)
                    if not c:
                        break
                    line += c
            if line.startswith(b"danube-broker listening on"):
                break
            self.proc.wait()
            if time.monotonic() >= deadline:
                raise RuntimeError("broker did not start: %r" % line)
        words = line.split()
        self.port = int(words[3].rsplit(b":", 1)[1])
        self.aport = int(words[5].rsplit(b":", 1)[1])
        self.addr = "127.0.0.1:%d" % self.port

    def log_text(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def wait_log(self, text, timeout=5):
        """Waits until the broker has logged text (e.g. that a consumer's stream is open)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if text in self.log_text():
                return
            time.sleep(0.01)
        raise AssertionError("broker never logged %r" % text)

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(10)
        self.proc.stdout.close()
        self.log.close()
        return rc

    def admin(self, *args):
        return subprocess.run(["/usr/bin/python3", os.path.join(HERE, "danube-admin"), "-a",
                               "127.0.0.1:%d" % self.aport] + list(args), capture_output=True).returncode


class Stream:
    """A ReceiveMessages call read by a thread into a queue."""

    def __init__(self, client, consumer_id, broker=None, read=True):
        self.q = queue.Queue()
        self.call = client.channel.unary_stream(
            "/danube.ConsumerService/ReceiveMessages", request_serializer=api.ReceiveRequest.SerializeToString,
            response_deserializer=api.StreamMessage.FromString)(api.ReceiveRequest(consumer_id=consumer_id),
                                                                metadata=client.md)
        self.code = None
        if read:
            self.read()
        if broker:
            broker.wait_log("consumer %d stream opened" % consumer_id)

    def read(self):
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        try:
            for m in self.call:
                self.q.put(m)
            self.code = SC.OK
        except grpc.RpcError as e:
            self.code = e.code()
        self.q.put(None)

    def take(self, n, timeout=5):
        out = []
        end = time.monotonic() + timeout
        while len(out) < n:
            m = self.q.get(timeout=max(0.01, end - time.monotonic()))
            if m is None:
                raise AssertionError("stream ended with %s after %d messages" % (self.code, len(out)))
            out.append(m)
        return out

    def quiet(self, secs):
        try:
            m = self.q.get(timeout=secs)
        except queue.Empty:
            return True
        self.q.put(m)
        return False

    def ended(self, timeout=5):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.code is not None:
                return self.code
            time.sleep(0.02)
        return None


class Client:
    def __init__(self, broker, token=None, channel=None):
        self.channel = channel or grpc.insecure_channel(broker.addr)
        self.md = (("authorization", "Bearer " + token),) if token else None
        self.rid = 0

    def call(self, path, req, resp_cls, **kw):
        return self.channel.unary_unary(path, request_serializer=type(req).SerializeToString,
                                        response_deserializer=resp_cls.FromString)(req, metadata=self.md, timeout=10,
                                                                                  **kw)

    def lookup(self, topic):
        return self.call("/danube.Discovery/TopicLookup", api.TopicLookupRequest(request_id=7, topic=topic),
                         api.TopicLookupResponse)

    def partitions(self, topic):
        return list(self.call("/danube.Discovery/TopicPartitions", api.TopicLookupRequest(topic=topic),
                              api.TopicPartitionsResponse).partitions)

    def producer(self, topic, name="p", reliable=False):
        return self.call("/danube.ProducerService/CreateProducer",
                         api.ProducerRequest(request_id=1, producer_name=name, topic_name=topic,
                                             dispatch_strategy=api.Reliable if reliable else api.NonReliable),
                         api.ProducerResponse).producer_id

    def send(self, pid, topic, payload=b"x", key=None, name="p"):
        self.rid += 1
        m = api.StreamMessage(request_id=self.rid, payload=payload, producer_name=name,
                              msg_id=api.MsgID(producer_id=pid, topic_name=topic), attributes={"k": "v"})
        if key is not None:
            m.routing_key = key
        r = self.call("/danube.ProducerService/SendMessage", m, api.MessageResponse)
        assert r.request_id == self.rid
        return r

    def subscribe(self, topic, sub, name="c", sub_type=ShT, filters=()):
        return self.call("/danube.ConsumerService/Subscribe",
                         api.ConsumerRequest(topic_name=topic, subscription=sub, consumer_name=name,
                                             subscription_type=sub_type, key_filters=filters),
                         api.ConsumerResponse).consumer_id

    def ack(self, m, sub):
        return self.call("/danube.ConsumerService/Ack",
                         api.AckRequest(request_id=m.request_id, msg_id=m.msg_id, subscription_name=sub),
                         api.AckResponse)

    def nack(self, m, sub, delay_ms=None):
        req = api.NackRequest(msg_id=m.msg_id, subscription_name=sub)
        if delay_ms is not None:
            req.delay_ms = delay_ms
        return self.call("/danube.ConsumerService/Nack", req, api.NackResponse)

    def health(self, client, cid):
        return self.call("/danube.HealthCheck/HealthCheck", api.HealthCheckRequest(client=client, id=cid),
                         api.HealthCheckResponse).status


class Case(unittest.TestCase):
    def status(self, fn, *args):
        with self.assertRaises(grpc.RpcError) as cm:
            fn(*args)
        return cm.exception.code(), cm.exception.details()


class SharedBroker(Case):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="brk-test-")
        cls.b = Broker("--nack-delay-ms", "100", data_dir=cls.tmp)
        cls.c = Client(cls.b)

    @classmethod
    def tearDownClass(cls):
        cls.c.channel.close()
        assert cls.b.stop() == 0
        shutil.rmtree(cls.tmp, True)

    def test_lookup_and_partitions(self):
        c = self.c
        self.assertEqual(self.status(c.lookup, "/default/nope"),
                         (SC.NOT_FOUND, "Unable to find the requested topic: /default/nope"))
        code, text = self.status(c.lookup, "/default/a.b")
        self.assertEqual(code, SC.INVALID_ARGUMENT)
        self.assertIn("invalid format", text)
        self.assertEqual(self.b.admin("create-partitioned", "/default/lp", "3"), 0)
        r = c.lookup("/default/lp-part-1")
        self.assertEqual((r.request_id, r.response_type), (7, api.TopicLookupResponse.Connect))
        self.assertEqual(r.broker_url, "http://" + self.b.addr)
        self.assertEqual(r.connect_url, r.broker_url)
        self.assertEqual(c.partitions("/default/lp"), ["/default/lp-part-%d" % i for i in range(3)])
        self.assertEqual(c.partitions("/default/lp-part-2"), ["/default/lp-part-2"])
        self.assertEqual(c.partitions("/default/none"), [])
        self.assertEqual(self.status(c.producer, "/default/lp")[0], SC.ALREADY_EXISTS)

    def test_producer_rules(self):
        c = self.c
        a = c.producer("/default/pr", "one")
        self.assertEqual(c.producer("/default/pr", "one"), a)
        self.assertNotEqual(c.producer("/default/pr", "two"), a)
        self.assertEqual(self.status(c.producer, "/default/pr", "three", True),
                         (SC.FAILED_PRECONDITION, "Producer requested dispatch strategy does not match topic strategy"))
        code, text = self.status(c.producer, "/nons/t")
        self.assertEqual(code, SC.UNAVAILABLE)
        self.assertTrue(text.startswith("Unable to find the namespace nons, "), text)
        self.assertEqual(self.status(c.send, 12345, "/default/pr"),
                         (SC.NOT_FOUND, "The producer with id 12345 does not exist"))
        self.assertEqual(self.status(c.subscribe, "/default/never", "s")[0], SC.NOT_FOUND)
        self.assertEqual(self.status(c.health, 5, 1)[0], SC.INVALID_ARGUMENT)
        self.assertEqual(c.health(0, a), api.HealthCheckResponse.OK)
        self.assertEqual(c.health(0, 99), api.HealthCheckResponse.CLOSE)
        too_big = b"z" * (4 * 1024 * 1024 + 1)
        code, text = self.status(c.send, a, "/default/pr", too_big)
        self.assertEqual(code, SC.OUT_OF_RANGE)  # tonic's answer, as the real broker's
        self.assertTrue(text.startswith("Error, decoded message length too large: found "), text)

    def test_reliable_offsets_window_and_acks(self):
        c, t = self.c, "/default/rel"
        self.assertEqual(self.b.admin("create-topic", t, "--reliable"), 0)
        pid = c.producer(t, reliable=True)
        c.send(pid, t, b"before")  # offset 0: a new subscription starts after it
        s = Stream(c, c.subscribe(t, "sub"))
        for i in range(15):
            c.send(pid, t, b"m%d" % i)
        got = s.take(10)
        self.assertEqual([m.msg_id.topic_offset for m in got], list(range(1, 11)))
        self.assertEqual(got[0].payload, b"m0")
        self.assertEqual(dict(got[0].attributes), {"k": "v"})
        self.assertTrue(s.quiet(0.3), "more than max_unacked=10 in flight")
        c.ack(got[3], "sub")  # out of order: frees one slot, the cursor stays
        self.assertEqual(s.take(1)[0].msg_id.topic_offset, 11)
        for m in got:
            c.ack(m, "sub")
        rest = s.take(4)
        self.assertEqual([m.msg_id.topic_offset for m in rest], [12, 13, 14, 15])
        self.assertEqual(self.status(c.ack, got[0], "nosub")[0], SC.INTERNAL)
        s.call.cancel()

    def test_nack_redelivers_same_offset(self):
        c, t = self.c, "/default/nack"
        pid = c.producer(t, reliable=True)
        s = Stream(c, c.subscribe(t, "sub"))
        c.send(pid, t, b"a")
        m = s.take(1)[0]
        c.nack(m, "sub", delay_ms=50)
        again = s.take(1)[0]
        self.assertEqual((again.msg_id.topic_offset, again.payload), (m.msg_id.topic_offset, b"a"))
        c.nack(again, "sub")  # no delay given: the broker's --nack-delay-ms (100)
        third = s.take(1)[0]
        self.assertEqual(third.msg_id.topic_offset, m.msg_id.topic_offset)
        c.ack(third, "sub")
        self.assertTrue(s.quiet(0.3))
        s.call.cancel()

    def test_exclusive_and_takeover(self):
        c, t = self.c, "/default/ex"
        c.producer(t)
        cid = c.subscribe(t, "sub", "first", ExT)
        code, text = self.status(c.subscribe, t, "sub", "second", ExT)
        self.assertEqual(code, SC.PERMISSION_DENIED)
        self.assertEqual(text, "Not able to subscribe to the topic /default/ex due to Not allowed to add the "
                               "Consumer: second, the Exclusive subscription can't be shared with other consumers")
        s1 = Stream(c, cid, self.b)
        self.assertEqual(c.subscribe(t, "sub", "first", ExT), cid)
        self.assertEqual(s1.ended(), SC.OK)
        self.assertEqual(c.health(1, cid), api.HealthCheckResponse.OK)

    def test_exclusive_stays_taken_after_its_stream_dies(self):
        c, t = self.c, "/default/exdead"
        pid = c.producer(t, reliable=True)
        cid = c.subscribe(t, "sub", "first", ExT)
        s1 = Stream(c, cid, self.b)
        for i in range(12):
            c.send(pid, t, b"e%d" % i)
        window = offsets(s1.take(10))
        s1.call.cancel()  # the client goes away holding its window unacked
        self.b.wait_log("consumer %d disconnected" % cid)
        self.assertEqual(c.health(1, cid), api.HealthCheckResponse.CLOSE)
        code, text = self.status(c.subscribe, t, "sub", "second", ExT)
        self.assertEqual(code, SC.PERMISSION_DENIED)
        self.assertIn("the Exclusive subscription can't be shared with other consumers", text)
        self.assertEqual(c.subscribe(t, "sub", "first", ExT), cid)  # the same name, at once
        s2 = Stream(c, cid, self.b)
        again = s2.take(10)
        self.assertEqual(offsets(again), window)  # the whole window again; it had been read: no extra
        self.assertTrue(s2.quiet(0.2))
        for m in again:
            c.ack(m, "sub")
        self.assertEqual(offsets(s2.take(2)), [window[-1] + 1, window[-1] + 2])
        s2.call.cancel()

    def test_takeover_replays_the_consumer_channel(self):
        """A stream that ends before taking all that was sent to it leaves up to 4 messages in
        the consumer's channel: the next stream gets them first, then the window again."""
        c, t = self.c, "/default/exdup"
        pid = c.producer(t, reliable=True)
        cid = c.subscribe(t, "sub", "first", ExT)
        s1 = Stream(c, cid, self.b, read=False)  # never read: HTTP/2 flow control stalls the broker
        big = b"d" * (2 * 1024 * 1024)  # 10 of them are far more than the HTTP/2 windows
        for i in range(10):
            c.send(pid, t, big + b"%d" % i)
        s1.call.cancel()
        self.b.wait_log("consumer %d stream ended; " % cid)
        kept = int(re.search(r"consumer %d stream ended; (\d+) messages stay" % cid, self.b.log_text()).group(1))
        self.assertTrue(1 <= kept <= 4, kept)
        self.assertEqual(c.subscribe(t, "sub", "first", ExT), cid)
        s2 = Stream(c, cid, self.b)
        got = offsets(s2.take(kept + 10, timeout=30))
        self.assertEqual(got[kept:], list(range(10)))  # the redelivered window, in order
        self.assertEqual(got[:kept], list(range(got[0], got[0] + kept)))  # duplicates, ascending
        self.assertLessEqual(got[kept - 1], 9)
        self.assertTrue(s2.quiet(0.2))
        s2.call.cancel()

    def test_shared_failover_keyshared(self):
        c, t = self.c, "/default/disp"
        pid = c.producer(t, reliable=True)
        a = Stream(c, c.subscribe(t, "sh", "a", ShT), self.b)
        b = Stream(c, c.subscribe(t, "sh", "b", ShT), self.b)
        for i in range(4):
            c.send(pid, t)
        self.assertEqual(len(a.take(2)) + len(b.take(2)), 4)
        f1 = Stream(c, c.subscribe(t, "fo", "f1", FoT), self.b)
        f2 = Stream(c, c.subscribe(t, "fo", "f2", FoT), self.b)
        c.send(pid, t)
        self.assertEqual(len(f1.take(1)), 1)
        self.assertTrue(f2.quiet(0.2))
        k1 = Stream(c, c.subscribe(t, "ks", "k1", KsT, ["eu-*"]), self.b)
        k2 = Stream(c, c.subscribe(t, "ks", "k2", KsT, ["us-*"]), self.b)
        c.send(pid, t, key="us-1")
        c.send(pid, t, key="eu-7")
        self.assertEqual(k1.take(1)[0].routing_key, "eu-7")
        self.assertEqual(k2.take(1)[0].routing_key, "us-1")
        for s in (a, b, f1, f2, k1, k2):
            s.call.cancel()

    def test_failover_never_fails_over(self):
        """The first consumer added stays the active one, whether its stream is open or not."""
        c, t = self.c, "/default/fo"
        pid = c.producer(t, reliable=True)
        aid = c.subscribe(t, "fo", "a", FoT)
        a = Stream(c, aid, self.b)
        b = Stream(c, c.subscribe(t, "fo", "b", FoT), self.b)
        c.send(pid, t, b"f0")
        self.assertEqual(a.take(1)[0].payload, b"f0")
        a.call.cancel()  # A goes away without acking
        self.b.wait_log("consumer %d disconnected" % aid)
        c.send(pid, t, b"f1")
        self.assertTrue(b.quiet(0.5), "B received while A was away")
        self.assertEqual(c.subscribe(t, "fo", "a", FoT), aid)  # only A itself brings delivery back
        a2 = Stream(c, aid, self.b)
        self.assertEqual([m.payload for m in a2.take(2)], [b"f0", b"f1"])
        self.assertTrue(b.quiet(0.2))
        nt = "/default/fonr"  # non-reliable: dropped while A is away
        npid = c.producer(nt)
        nid = c.subscribe(nt, "fo", "a", FoT)
        na = Stream(c, nid, self.b)
        nb = Stream(c, c.subscribe(nt, "fo", "b", FoT), self.b)
        na.call.cancel()
        self.b.wait_log("consumer %d disconnected" % nid)
        c.send(npid, nt, b"lost")
        self.assertTrue(nb.quiet(0.3))
        for s in (a2, b, nb):
            s.call.cancel()

    def test_non_reliable_delivery_and_disconnect(self):
        c, t = self.c, "/default/nr"
        pid = c.producer(t)
        c.send(pid, t)  # no subscription yet: delivered to nobody
        cid = c.subscribe(t, "sub")
        s = Stream(c, cid, self.b)
        c.send(pid, t, b"one")
        m = s.take(1)[0]
        self.assertEqual((m.payload, m.msg_id.topic_offset), (b"one", 0))
        c.ack(m, "sub")  # a no-op, but OK
        s.call.cancel()
        self.assertTrue(s.ended())
        deadline = time.monotonic() + 5
        while c.health(1, cid) != api.HealthCheckResponse.CLOSE and time.monotonic() < deadline:
            time.sleep(0.02)  # polling with a deadline
        self.assertEqual(c.health(1, cid), api.HealthCheckResponse.CLOSE)

    def test_non_reliable_drops_for_slow_consumer(self):
        c, t = self.c, "/default/slow"
        pid = c.producer(t)
        s = Stream(c, c.subscribe(t, "sub"), self.b, read=False)
        big = b"s" * (256 * 1024)
        for i in range(40):  # 10 MiB: far more than HTTP/2 windows plus the 4-message buffer
            c.send(pid, t, big)
        self.b.wait_log("channel full; dropping")
        s.read()
        got = 0
        while not s.quiet(0.3):
            got += len(s.take(1))
        self.assertGreater(got, 0)
        self.assertLess(got, 40)
        s.call.cancel()

    def test_schema_registry(self):
        c = self.c
        reg = lambda d: c.call("/danube_schema.SchemaRegistry/RegisterSchema",  # noqa: E731
                               sch.RegisterSchemaRequest(subject="orders", schema_type="json_schema",
                                                         schema_definition=d), sch.RegisterSchemaResponse)
        r1 = reg(b'{"type":"object"}')
        self.assertEqual((r1.version, r1.is_new_version), (1, True))
        again = reg(b'{"type":"object"}')
        self.assertEqual((again.schema_id, again.version, again.is_new_version), (r1.schema_id, 1, False))
        r2 = reg(b'{"type":"object","required":["id"]}')
        self.assertEqual((r2.schema_id, r2.version), (r1.schema_id, 2))
        latest = c.call("/danube_schema.SchemaRegistry/GetLatestSchema", sch.GetLatestSchemaRequest(subject="orders"),
                        sch.GetSchemaResponse)
        self.assertEqual((latest.version, latest.subject, latest.schema_type), (2, "orders", "json_schema"))
        v1 = c.call("/danube_schema.SchemaRegistry/GetSchema", sch.GetSchemaRequest(schema_id=r1.schema_id, version=1),
                    sch.GetSchemaResponse)
        self.assertEqual(v1.schema_definition, b'{"type":"object"}')
        vs = c.call("/danube_schema.SchemaRegistry/ListVersions", sch.ListVersionsRequest(subject="orders"),
                    sch.ListVersionsResponse)
        self.assertEqual([v.version for v in vs.versions], [1, 2])
        ok = c.call("/danube_schema.SchemaRegistry/CheckCompatibility",
                    sch.CheckCompatibilityRequest(subject="orders", new_schema_definition=b"{}"),
                    sch.CheckCompatibilityResponse)
        self.assertTrue(ok.is_compatible)
        subs = c.call("/danube_schema.SchemaRegistry/ListSubjects", sch.ListSubjectsRequest(), sch.ListSubjectsResponse)
        self.assertIn("orders", [x.subject for x in subs.subjects])
        self.assertEqual(self.status(c.call, "/danube_schema.SchemaRegistry/GetLatestSchema",
                                     sch.GetLatestSchemaRequest(subject="none"), sch.GetSchemaResponse)[0],
                         SC.NOT_FOUND)
        self.assertEqual(self.status(c.call, "/danube_schema.SchemaRegistry/GetSchema",
                                     sch.GetSchemaRequest(schema_id=9999), sch.GetSchemaResponse)[0], SC.NOT_FOUND)
        req = api.ProducerRequest(producer_name="sp", topic_name="/default/typed",
                                  schema_ref=api.SchemaReference(subject="orders", use_latest=True))
        c.call("/danube.ProducerService/CreateProducer", req, api.ProducerResponse)
        req.schema_ref.subject = "other"
        self.assertEqual(self.status(c.call, "/danube.ProducerService/CreateProducer", req,
                                     api.ProducerResponse)[0], SC.FAILED_PRECONDITION)

    def test_receive_unknown_consumer(self):
        s = Stream(self.c, 424242)
        self.assertEqual(s.ended(), SC.NOT_FOUND)

    def test_unload_keeps_data(self):
        c, t = self.c, "/default/unl"
        pid = c.producer(t, "up", reliable=True)
        cid = c.subscribe(t, "sub", "uc")
        s = Stream(c, cid)
        for i in range(3):
            c.send(pid, t, b"u%d" % i, name="up")
        got = s.take(3)
        c.ack(got[0], "sub")
        self.assertEqual(self.b.admin("unload", t), 0)
        self.assertEqual(s.ended(), SC.OK)
        self.assertEqual(c.health(0, pid), api.HealthCheckResponse.CLOSE)
        self.assertEqual(c.health(1, cid), api.HealthCheckResponse.CLOSE)
        self.assertEqual(self.status(c.send, pid, t)[0], SC.NOT_FOUND)
        c.lookup(t)
        pid2 = c.producer(t, "up", reliable=True)
        s2 = Stream(c, c.subscribe(t, "sub", "uc"))
        c.send(pid2, t, b"u3", name="up")
        got2 = s2.take(3)
        self.assertEqual([m.payload for m in got2], [b"u1", b"u2", b"u3"])
        self.assertEqual([m.msg_id.topic_offset for m in got2], [1, 2, 3])
        s2.call.cancel()


class Standalone(Case):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="brk-test-")

    def tearDown(self):
        shutil.rmtree(self.tmp, True)

    def test_persistence_across_kill(self):
        b = Broker(data_dir=self.tmp)
        c, t = Client(b), "/default/keep"
        pid = c.producer(t, reliable=True)
        s = Stream(c, c.subscribe(t, "sub", "kc"))
        for i in range(5):
            c.send(pid, t, b"k%d" % i)
        got = s.take(5)
        c.ack(got[0], "sub")
        c.ack(got[1], "sub")
        c.ack(got[3], "sub")  # above the cursor: redelivered after restart (at least once)
        c.channel.close()
        self.assertEqual(b.stop(signal.SIGKILL), -signal.SIGKILL)
        b.start()
        c = Client(b)
        self.assertEqual(self.status(c.send, pid, t)[0], SC.NOT_FOUND)
        pid = c.producer(t, reliable=True)
        s = Stream(c, c.subscribe(t, "sub", "kc"))
        c.send(pid, t, b"k5")
        got = s.take(4)
        self.assertEqual([m.msg_id.topic_offset for m in got], [2, 3, 4, 5])
        self.assertEqual([m.payload for m in got], [b"k2", b"k3", b"k4", b"k5"])
        s.call.cancel()
        c.channel.close()
        self.assertEqual(b.stop(), 0)

    def test_ack_timeout_redelivers(self):
        b = Broker("--ack-timeout-ms", "300")
        c, t = Client(b), "/default/late"
        pid = c.producer(t, reliable=True)
        s = Stream(c, c.subscribe(t, "sub"))
        c.send(pid, t, b"a")
        m = s.take(1)[0]
        late = s.take(1, timeout=5)[0]  # never acked: redelivered after 300 ms
        self.assertEqual((late.msg_id.topic_offset, late.payload), (m.msg_id.topic_offset, b"a"))
        c.ack(late, "sub")
        s.call.cancel()
        c.channel.close()
        self.assertEqual(b.stop(), 0)

    def test_exclusive_frees_on_restart(self):
        b = Broker(data_dir=self.tmp)
        c, t = Client(b), "/default/exr"
        c.producer(t, reliable=True)
        c.subscribe(t, "sub", "first", ExT)
        self.assertEqual(self.status(c.subscribe, t, "sub", "second", ExT)[0], SC.PERMISSION_DENIED)
        c.channel.close()
        self.assertEqual(b.stop(), 0)
        b.start()
        c = Client(b)
        self.assertNotEqual(c.subscribe(t, "sub", "second", ExT), 0)  # consumers do not survive a restart
        c.channel.close()
        self.assertEqual(b.stop(), 0)

    def test_live_feed_lag_skips_ahead(self):
        b = Broker("--live-feed-capacity", "8")
        c, t = Client(b), "/default/lag"
        pid = c.producer(t, reliable=True)
        s = Stream(c, c.subscribe(t, "sub", "lc", ExT), b)
        for i in range(30):
            c.send(pid, t, b"l%d" % i)
        window = s.take(10)  # 0..9 in flight; the feed holds only the newest 8 of the rest
        self.assertEqual(offsets(window), list(range(10)))
        for m in window:
            c.ack(m, "sub")
        self.assertEqual(offsets(s.take(8)), list(range(22, 30)))  # 10..21 are lost, silently
        self.assertTrue(s.quiet(0.2))
        lag = "poll_next error on %s/sub: error=Other: broadcast error: channel lagged by 12" % t
        b.wait_log(lag)
        # The cursor stops before the gap. After an unload the subscription reads the WAL from
        # there, as the real broker's new dispatcher does with a saved cursor: it cannot lag.
        self.assertEqual(b.admin("unload", t), 0)
        self.assertEqual(s.ended(), SC.OK)
        pid = c.producer(t, reliable=True)
        s = Stream(c, c.subscribe(t, "sub", "lc", ExT), b)
        for i in range(30, 50):  # 20 more while 10..19 are in flight: far more than 8 behind
            c.send(pid, t, b"l%d" % i)
        got = []
        while len(got) < 40:
            m = s.take(1)[0]
            got.append(m.msg_id.topic_offset)
            c.ack(m, "sub")
        self.assertEqual(got, list(range(10, 50)))
        self.assertEqual(b.log_text().count("channel lagged"), 1)
        s.call.cancel()
        c.channel.close()
        self.assertEqual(b.stop(), 0)

    def test_token_and_tls(self):
        key, crt = os.path.join(self.tmp, "k.pem"), os.path.join(self.tmp, "c.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
                        "-days", "1", "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=IP:127.0.0.1,DNS:localhost"], check=True, capture_output=True)
        b = Broker("--token", "s3cret", "--tls-cert", crt, "--tls-key", key)
        with open(crt, "rb") as f:
            creds = grpc.ssl_channel_credentials(f.read())
        good = Client(b, "s3cret", grpc.secure_channel(b.addr, creds))
        t = "/default/sec"
        self.assertNotEqual(good.producer(t), 0)
        self.assertEqual(good.lookup(t).broker_url, "https://" + b.addr)
        none = Client(b, None, grpc.secure_channel(b.addr, creds))
        self.assertEqual(self.status(none.lookup, t), (SC.UNAUTHENTICATED, "Authentication credentials are missing"))
        bad = Client(b, "nope", grpc.secure_channel(b.addr, creds))
        self.assertEqual(self.status(bad.producer, t), (SC.UNAUTHENTICATED, "Invalid token"))
        self.assertEqual(Stream(bad, 1).ended(), SC.UNAUTHENTICATED)
        for cl in (good, none, bad):
            cl.channel.close()
        self.assertEqual(b.stop(), 0)

    def test_connect_url_and_headers_log(self):
        hlog = os.path.join(self.tmp, "headers.log")
        b = Broker("--connect-url", "http://proxy.example:9", "--headers-log", hlog)
        c = Client(b)
        t = "/default/px"
        md = (("x-danube-broker-url", "http://%s/" % b.addr),)
        self.assertNotEqual(c.producer(t), 0)
        r = c.lookup(t)
        self.assertEqual((r.connect_url, r.broker_url, r.proxy),
                         ("http://proxy.example:9", "http://" + b.addr, True))
        c.md = md
        c.lookup(t)
        c.subscribe(t, "s")
        c.subscribe(t, "s")  # the same (method, value) is noted once
        b.wait_log("x-danube-broker-url on Subscribe: http://%s/" % b.addr)
        with open(hlog) as f:
            self.assertEqual(f.read(), "TopicLookup http://%s/\nSubscribe http://%s/\n" % (b.addr, b.addr))
        c.channel.close()
        self.assertEqual(b.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
