"""The broker's state in standalone mode: topics, producers, consumers and what each
client-facing call does to them. Only the event loop's thread touches it, and no method
awaits, so each call is atomic. Refusals raise BrokerError(code, text) with the real
broker's status codes and texts."""
import logging
import random
import re
import time

import grpc

from subscriptions import EXCLUSIVE, TYPE_NAMES, Consumer, Subscription

log = logging.getLogger("danube-broker")
MAX_MESSAGE_SIZE = 10485760  # the real broker's policies.max_message_size default
_PART = re.compile(r"^(.*)-part-(\d+)$")
_OK_CHARS = re.compile(r"^[\w-]*$")


class BrokerError(Exception):
    def __init__(self, code, text):
        super().__init__(text)
        self.code = code
        self.text = text


def valid_topic_name(name):
    # The reference splits on '/' and wants 3 parts of alphanumerics, '_' and '-'.
    parts = name.split("/")
    return len(parts) == 3 and all(_OK_CHARS.match(p) for p in parts)


def _bad_name(name):
    return BrokerError(grpc.StatusCode.INVALID_ARGUMENT,
                       "The topic: %s has an invalid format, should be: /namespace_name/topic_name" % name)


def _routing_key(msg):
    return msg.routing_key if msg.HasField("routing_key") else msg.producer_name


class Topic:
    def __init__(self, name, reliable):
        self.name = name
        self.reliable = reliable
        self.log = []  # reliable: offset -> (serialized StreamMessage, routing key)
        self.next_offset = 0
        self.subs = {}
        self.producers = {}  # producer name -> id
        self.schema_subject = None


class Producer:
    def __init__(self, pid, name, topic):
        self.id = pid
        self.name = name
        self.topic = topic


class Broker:
    def __init__(self, url, storage, opts, api, schemas):
        self.url = url
        self.storage = storage
        self.opts = opts
        self.api = api
        self.schemas = schemas
        self.namespaces = {"default"}
        self.topics = {}
        self.producers = {}  # id -> Producer
        self.consumers = {}  # id -> Consumer
        self._load()

    def _load(self):
        for name, reliable in self.storage.load_topics().items():
            t = self.topics[name] = Topic(name, reliable)
            if not reliable:
                continue
            for data in self.storage.load_messages(name):
                msg = self.api.StreamMessage.FromString(data)
                t.log.append((data, _routing_key(msg)))
            t.next_offset = len(t.log)
            for sub, (sub_type, cursor) in self.storage.load_subscriptions(name).items():
                t.subs[sub] = Subscription(t, sub, sub_type, cursor, self.opts)
            log.info("loaded topic %s: %d messages, %d subscriptions", name, len(t.log), len(t.subs))

    def _new_id(self, taken):
        while True:
            i = random.getrandbits(64)
            if i and i not in taken:
                return i

    # ---- topic lifecycle (producer auto-create and admin)
    def _clash(self, name):
        m = _PART.match(name)
        if m and m.group(1) in self.topics:
            return m.group(1)
        prefix = name + "-part-"
        return next((n for n in self.topics if n.startswith(prefix)), None)

    def create_topic(self, name, reliable):
        if not valid_topic_name(name):
            raise _bad_name(name)
        ns = name.split("/")[1]
        if ns not in self.namespaces:
            raise BrokerError(grpc.StatusCode.UNAVAILABLE,
                              "Unable to find the namespace %s, the topic can be created only for an "
                              "exisiting namespace" % ns)
        if name in self.topics:
            raise BrokerError(grpc.StatusCode.ALREADY_EXISTS, "The topic %s already exists" % name)
        other = self._clash(name)
        if other:
            raise BrokerError(grpc.StatusCode.ALREADY_EXISTS,
                              "The topic %s clashes with the existing topic %s: a partitioned and a "
                              "non-partitioned topic can't share a name" % (name, other))
        t = self.topics[name] = Topic(name, reliable)
        self.storage.add_topic(name, reliable)
        log.info("created topic %s (%s)", name, "Reliable" if reliable else "NonReliable")
        return t

    def _existing(self, name):
        if not valid_topic_name(name):
            raise _bad_name(name)
        t = self.topics.get(name)
        if t is None:
            raise BrokerError(grpc.StatusCode.NOT_FOUND, "Unable to find the topic: %s" % name)
        return t

    def _drop_clients(self, t, now):
        for pid in t.producers.values():
            self.producers.pop(pid, None)
        t.producers.clear()
        for sub in t.subs.values():
            for c in sub.consumers:
                sub.detach(c, now)
                c.active = False
                self.consumers.pop(c.id, None)
            sub.consumers = []

    def delete_topic(self, name):
        t = self._existing(name)
        self._drop_clients(t, time.monotonic())
        del self.topics[name]
        self.storage.delete_topic(name)
        log.info("deleted topic %s", name)

    def unload_topic(self, name):
        """As a move to another broker: clients must look up and attach again; data stays."""
        t = self._existing(name)
        self._drop_clients(t, time.monotonic())
        if t.reliable:
            for sub in t.subs.values():
                sub.reset_delivery()
        else:
            t.subs.clear()
        log.info("unloaded topic %s", name)

    def create(self, name, reliable):
        self.create_topic(name, reliable)

    def create_partitioned(self, base, n, reliable):
        if not valid_topic_name(base):
            raise _bad_name(base)
        for i in range(n):
            self.create_topic("%s-part-%d" % (base, i), reliable)

    def describe(self, name):
        t = self._existing(name)
        return t.reliable, sorted(t.subs), t.schema_subject

    # ---- discovery
    def lookup(self, name):
        if not valid_topic_name(name):
            raise _bad_name(name)
        if name not in self.topics:
            raise BrokerError(grpc.StatusCode.NOT_FOUND, "Unable to find the requested topic: %s" % name)
        return self.url

    def partitions(self, name):
        if not valid_topic_name(name):
            raise _bad_name(name)
        if name in self.topics:
            return [name]
        prefix = name + "-part-"
        found = [n for n in self.topics if n.startswith(prefix) and n[len(prefix):].isdigit()]
        return sorted(found, key=lambda n: int(n[len(prefix):]))

    # ---- producers
    def create_producer(self, req):
        name = req.topic_name
        if not valid_topic_name(name):
            raise _bad_name(name)
        reliable = req.dispatch_strategy == self.api.Reliable
        t = self.topics.get(name)
        if t is None:
            t = self.create_topic(name, reliable)
        elif t.reliable != reliable:
            raise BrokerError(grpc.StatusCode.FAILED_PRECONDITION,
                              "Producer requested dispatch strategy does not match topic strategy")
        if req.HasField("schema_ref"):
            self._bind_schema(t, req.schema_ref.subject)
        pid = t.producers.get(req.producer_name)
        if pid is not None:
            return pid
        pid = self._new_id(self.producers)
        t.producers[req.producer_name] = pid
        self.producers[pid] = Producer(pid, req.producer_name, name)
        log.info("producer %s created with id %d on %s", req.producer_name, pid, name)
        return pid

    def _bind_schema(self, t, subject):
        if t.schema_subject is None:
            if not self.schemas.has_subject(subject):
                raise BrokerError(grpc.StatusCode.FAILED_PRECONDITION,
                                  "Failed to assign schema '%s' to topic '%s': subject not found. Ensure "
                                  "schema is registered first." % (subject, t.name))
            t.schema_subject = subject
        elif t.schema_subject != subject:
            raise BrokerError(grpc.StatusCode.FAILED_PRECONDITION,
                              "Topic '%s' uses schema subject '%s', cannot use '%s'. Only admin can change "
                              "topic schema." % (t.name, t.schema_subject, subject))

    def send(self, raw):
        msg = self.api.StreamMessage.FromString(raw)
        if not msg.HasField("msg_id"):
            # The reference unwraps it and panics; a clear INTERNAL is the closest we can do.
            raise BrokerError(grpc.StatusCode.INTERNAL, "StreamMessage.msg_id is missing")
        pid = msg.msg_id.producer_id
        p = self.producers.get(pid)
        if p is None:
            raise BrokerError(grpc.StatusCode.NOT_FOUND, "The producer with id %d does not exist" % pid)
        if len(msg.payload) > MAX_MESSAGE_SIZE:
            raise BrokerError(grpc.StatusCode.INVALID_ARGUMENT,
                              "The message size %d exceeds the maximum allowed size %d"
                              % (len(msg.payload), MAX_MESSAGE_SIZE))
        name = msg.msg_id.topic_name
        t = self.topics.get(name)
        if t is None:
            raise BrokerError(grpc.StatusCode.PERMISSION_DENIED,
                              "Unable to publish the message: Topic %s is draining or closed; retry "
                              "lookup/moved" % name)
        if p.topic != name:
            raise BrokerError(grpc.StatusCode.PERMISSION_DENIED,
                              "Unable to publish the message: the producer %d is not attached to the "
                              "topic %s" % (pid, name))
        key = _routing_key(msg)
        now = time.monotonic()
        if t.reliable:
            msg.msg_id.topic_offset = t.next_offset
            data = msg.SerializeToString()
            self.storage.append_message(name, data)
            t.log.append((data, key))
            t.next_offset += 1
            for sub in t.subs.values():
                sub.pump(now)
        else:
            for sub in t.subs.values():
                sub.offer(raw, key)
        return msg.request_id

    # ---- consumers
    def subscribe(self, req):
        t = self._existing(req.topic_name)
        now = time.monotonic()
        sub = t.subs.get(req.subscription)
        if sub is not None:
            for c in sub.consumers:
                if c.name == req.consumer_name:
                    sub.detach(c, now)  # takeover: the previous stream ends with OK
                    c.active = True
                    c.filters = list(req.key_filters)
                    log.info("consumer %s took over id %d on %s/%s", c.name, c.id, t.name, sub.name)
                    return c.id
            if sub.type == EXCLUSIVE and sub.consumers:
                raise BrokerError(grpc.StatusCode.PERMISSION_DENIED,
                                  "Not able to subscribe to the topic %s due to Not allowed to add the "
                                  "Consumer: %s, the Exclusive subscription can't be shared with other "
                                  "consumers" % (t.name, req.consumer_name))
        else:
            # A new reliable subscription starts at the latest offset, on the live feed.
            sub = t.subs[req.subscription] = Subscription(
                t, req.subscription, req.subscription_type, t.next_offset - 1, self.opts, live=True)
            if t.reliable:
                self.storage.save_subscription(t.name, sub.name, sub.type, sub.cursor)
        cid = self._new_id(self.consumers)
        c = Consumer(cid, req.consumer_name, sub, req.key_filters)
        sub.consumers.append(c)
        self.consumers[cid] = c
        log.info("consumer %s subscribed with id %d to %s/%s (%s)", c.name, cid, t.name, sub.name,
                 TYPE_NAMES.get(sub.type, sub.type))
        return cid

    def open_stream(self, cid):
        c = self.consumers.get(cid)
        if c is None:
            raise BrokerError(grpc.StatusCode.NOT_FOUND, "The consumer with the id %d does not exist" % cid)
        now = time.monotonic()
        c.sub.detach(c, now)  # a new stream replaces the previous one
        q, gen = c.sub.attach(c, now)
        log.info("consumer %d stream opened", cid)
        return c, q, gen

    def close_stream(self, c, gen):
        if c.gen == gen:
            log.info("consumer %d disconnected", c.id)
            c.active = False
            c.sub.detach(c, time.monotonic())

    def _ack_target(self, msg_id, subscription):
        t = self.topics.get(msg_id.topic_name)
        if t is None:
            raise BrokerError(grpc.StatusCode.INTERNAL,
                              "Error acknowledging message: topic %s not found" % msg_id.topic_name)
        sub = t.subs.get(subscription)
        if sub is None:
            raise BrokerError(grpc.StatusCode.INTERNAL,
                              "Error acknowledging message: subscription %s not found on topic %s"
                              % (subscription, t.name))
        return sub

    def ack(self, req):
        sub = self._ack_target(req.msg_id, req.subscription_name)
        sub.ack(req.msg_id.topic_offset, time.monotonic(), self.storage)

    def nack(self, req):
        sub = self._ack_target(req.msg_id, req.subscription_name)
        delay = req.delay_ms if req.HasField("delay_ms") else self.opts.nack_delay_ms
        sub.nack(req.msg_id.topic_offset, delay, time.monotonic())

    def health(self, client, cid):
        if client == 0:
            return cid in self.producers
        c = self.consumers.get(cid)
        return c is not None and c.active

    def tick(self):
        now = time.monotonic()
        for t in self.topics.values():
            if t.reliable:
                for sub in t.subs.values():
                    sub.tick(now)
