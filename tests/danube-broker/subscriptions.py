"""Subscriptions and consumers of one topic: which consumer gets a message, the reliable
cursor with its window of unacked messages, redelivery after Nack or ack timeout, and the
real broker's per-consumer channel and live feed."""
import asyncio
import collections
import fnmatch
import itertools
import logging

EXCLUSIVE, SHARED, FAILOVER, KEY_SHARED = 0, 1, 2, 3
TYPE_NAMES = {EXCLUSIVE: "Exclusive", SHARED: "Shared", FAILOVER: "Failover", KEY_SHARED: "KeyShared"}
END = object()  # what Mailbox.get returns once the stream must end (with OK)
CHANNEL = 4  # the real broker's per-consumer mpsc channel: its non-reliable buffer, and what outlives a stream

log = logging.getLogger("danube-broker")


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


class Mailbox:
    """The messages waiting for one ReceiveMessages stream (asyncio, one loop)."""

    def __init__(self, limit, items=()):
        self.items = collections.deque(items)
        self.limit = limit
        self.closed = False
        self.event = asyncio.Event()

    def offer(self, item):
        """Non-reliable: False (dropped) when the buffer is full."""
        if self.limit and len(self.items) >= self.limit:
            return False
        self.put(item)
        return True

    def put(self, item):
        self.items.append(item)
        self.event.set()

    def close(self):
        # What is still queued was in flight: the subscription redelivers it, and the
        # first CHANNEL items stay with the consumer (Subscription.detach).
        self.closed = True
        self.event.set()

    async def get(self):
        while not self.items and not self.closed:
            self.event.clear()
            await self.event.wait()
        return END if self.closed else self.items.popleft()


class Consumer:
    def __init__(self, cid, name, sub, filters):
        self.id = cid
        self.name = name
        self.sub = sub
        self.filters = list(filters)
        self.active = True  # what HealthCheck reports
        self.queue = None  # the open stream's queue; None while no stream is open
        self.gen = 0  # bumped whenever a stream is opened or ended
        self.channel = []  # what an ended stream left in the consumer's channel, for the next one

    def matches(self, key):
        return not self.filters or any(fnmatch.fnmatchcase(key, f) for f in self.filters)


class Subscription:
    def __init__(self, topic, name, sub_type, cursor, opts, live=False):
        self.topic = topic
        self.name = name
        self.type = sub_type
        self.opts = opts
        self.consumers = []  # in registration order; the first is Exclusive/Failover's active one
        self.rr = 0
        # Created without a saved cursor: the real broker reads the topic's live feed, which
        # can lag (--live-feed-capacity); otherwise it reads the WAL, which cannot.
        self.live = live
        # Reliable state. cursor: highest offset acked together with every offset before it.
        self.cursor = cursor
        self.next_read = cursor + 1
        self.inflight = {}  # offset -> (ack deadline, consumer)
        self.acked = set()  # acked offsets above the cursor
        self.retry = {}  # offset -> time it may be redelivered

    # ---- choosing a consumer
    def _open(self):
        """The consumers a message may go to: those with an open stream."""
        if self.type in (EXCLUSIVE, FAILOVER):
            # The real dispatcher (ExclusiveConsumerState) makes the first consumer added the
            # active one and never removes consumers: while its stream is gone, the others
            # get nothing. Failover never fails over.
            return [c for c in self.consumers[:1] if c.queue is not None]
        return [c for c in self.consumers if c.queue is not None]

    def _pick(self, key):
        live = self._open()
        if not live:
            return None
        if self.type in (EXCLUSIVE, FAILOVER):
            return live[0]
        if self.type == SHARED:
            self.rr += 1
            return live[self.rr % len(live)]
        live = sorted((c for c in live if c.matches(key)), key=lambda c: c.id)
        if not live:
            return None
        return live[fnv1a64(key.encode()) % len(live)]

    # ---- non-reliable
    def offer(self, data, key):
        c = self._pick(key)
        if c is None:
            return
        if not c.queue.offer(data):
            log.info("consumer %d channel full; dropping message on %s", c.id, self.topic.name)

    # ---- reliable
    def pump(self, now):
        """Sends due redeliveries, then new messages, while the window has room."""
        if not self.topic.reliable:
            return
        limit = self.opts.max_unacked
        for off in sorted(o for o, due in self.retry.items() if due <= now):
            if len(self.inflight) >= limit or not self._send(off, now):
                return
            del self.retry[off]
        while len(self.inflight) < limit and self.next_read < self.topic.next_offset:
            if self._lagged():
                return  # the real dispatcher ends this pass on the error; the next tick goes on
            off = self.next_read
            if off not in self.acked and off not in self.retry and not self._send(off, now):
                return
            self.next_read += 1

    def _lagged(self):
        """--live-feed-capacity N: the live feed is a tokio broadcast channel of N entries. A
        reader more than N behind the newest message is moved to the oldest one still held
        and loses the rest; the dispatcher logs the error and the client is never told."""
        cap = self.opts.live_feed_capacity
        if not self.live or cap <= 0 or not self._open():
            return False  # the real dispatcher reads the feed only when it has a consumer to send to
        oldest = self.topic.next_offset - cap
        if self.next_read >= oldest:
            return False
        log.warning("poll_next error on %s/%s: error=Other: broadcast error: channel lagged by %d",
                    self.topic.name, self.name, oldest - self.next_read)
        self.next_read = oldest
        return True

    def _send(self, off, now):
        data, key = self.topic.log[off]
        c = self._pick(key)
        if c is None:
            return False
        c.queue.put(data)  # unbounded: the window bounds it
        self.inflight[off] = (now + self.opts.ack_timeout_ms / 1000.0, c)
        return True

    def ack(self, off, now, storage):
        if not self.topic.reliable or off <= self.cursor:
            return
        self.inflight.pop(off, None)
        self.retry.pop(off, None)
        self.acked.add(off)
        moved = False
        while self.cursor + 1 in self.acked:
            self.acked.remove(self.cursor + 1)
            self.cursor += 1
            moved = True
        if moved:
            storage.save_subscription(self.topic.name, self.name, self.type, self.cursor)
        self.pump(now)

    def nack(self, off, delay_ms, now):
        if not self.topic.reliable or off <= self.cursor or off in self.acked:
            return
        if off >= self.topic.next_offset:
            return
        self.inflight.pop(off, None)
        self.retry[off] = now + delay_ms / 1000.0

    def tick(self, now):
        """Ack timeouts become redeliveries; due redeliveries are sent."""
        if not self.topic.reliable:
            return
        for off, (deadline, c) in list(self.inflight.items()):
            if deadline <= now:
                log.info("ack timeout: redelivering offset %d of %s/%s", off, self.topic.name, self.name)
                del self.inflight[off]
                self.retry[off] = now
        self.pump(now)

    def detach(self, c, now):
        """Ends c's open stream (with OK); what it had in flight is redelivered."""
        c.gen += 1
        if c.queue is not None:
            # The real channel belongs to the consumer, not to the stream: what the stream had
            # not taken yet (at most the channel's 4) reaches the consumer's next stream before
            # the redelivered window, as duplicates.
            c.channel = list(itertools.islice(c.queue.items, CHANNEL))
            c.queue.close()
            c.queue = None
            if c.channel:
                log.info("consumer %d stream ended; %d messages stay in its channel", c.id, len(c.channel))
        for off, (_, holder) in list(self.inflight.items()):
            if holder is c:
                del self.inflight[off]
                self.retry[off] = now
        self.pump(now)

    def attach(self, c, now):
        c.gen += 1
        c.queue = Mailbox(0 if self.topic.reliable else CHANNEL, c.channel)
        c.channel = []
        c.active = True
        self.pump(now)
        return c.queue, c.gen

    def reset_delivery(self):
        """After an unload: forget what was in flight and acked above the cursor; delivery
        restarts after the cursor, as the real broker's new dispatcher reads the WAL from
        its saved cursor."""
        self.inflight.clear()
        self.retry.clear()
        self.acked.clear()
        self.next_read = self.cursor + 1
        self.live = False
