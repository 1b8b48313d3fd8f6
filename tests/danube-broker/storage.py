"""--data-dir persistence: topic list, reliable topic logs and subscription cursors.

Every file is append-only and flushed on each write, so a SIGKILL loses nothing the broker
already acknowledged (the data is in the kernel's page cache).
"""
import json
import os
import struct
import urllib.parse

_LEN = struct.Struct(">I")


def _fname(topic):
    return urllib.parse.quote(topic, safe="")


class Storage:
    """With root None every method is a no-op and nothing survives a restart."""

    def __init__(self, root):
        self.root = root
        self.files = {}
        if root:
            os.makedirs(os.path.join(root, "topics"), exist_ok=True)

    def _path(self, *parts):
        return os.path.join(self.root, *parts)

    def _append(self, path, data):
        f = self.files.get(path)
        if f is None:
            f = self.files[path] = open(path, "ab")
        f.write(data)
        f.flush()

    def _close(self, path):
        f = self.files.pop(path, None)
        if f:
            f.close()

    def close(self):
        for path in list(self.files):
            self._close(path)

    # ---- topics
    def add_topic(self, name, reliable):
        if self.root:
            line = json.dumps({"op": "create", "name": name, "reliable": reliable})
            self._append(self._path("topics.jsonl"), (line + "\n").encode())

    def delete_topic(self, name):
        if not self.root:
            return
        line = json.dumps({"op": "delete", "name": name})
        self._append(self._path("topics.jsonl"), (line + "\n").encode())
        for ext in (".msgs", ".subs"):
            path = self._path("topics", _fname(name) + ext)
            self._close(path)
            if os.path.exists(path):
                os.unlink(path)

    def load_topics(self):
        """{name: reliable} as of the last run."""
        topics = {}
        if not self.root or not os.path.exists(self._path("topics.jsonl")):
            return topics
        with open(self._path("topics.jsonl"), "rb") as f:
            for raw in f:
                try:
                    rec = json.loads(raw)
                except ValueError:
                    continue  # a line cut short by a kill
                if rec["op"] == "create":
                    topics[rec["name"]] = rec["reliable"]
                else:
                    topics.pop(rec["name"], None)
        return topics

    # ---- reliable messages: [u32 big-endian length][serialized StreamMessage]
    def append_message(self, topic, data):
        if self.root:
            self._append(self._path("topics", _fname(topic) + ".msgs"), _LEN.pack(len(data)) + data)

    def load_messages(self, topic):
        path = self._path("topics", _fname(topic) + ".msgs") if self.root else None
        if not path or not os.path.exists(path):
            return []
        with open(path, "rb") as f:
            buf = f.read()
        out, pos = [], 0
        while pos + 4 <= len(buf):
            (n,) = _LEN.unpack_from(buf, pos)
            if pos + 4 + n > len(buf):
                break
            out.append(buf[pos + 4:pos + 4 + n])
            pos += 4 + n
        if pos != len(buf):
            # A record cut short by a kill was never acknowledged: drop it.
            with open(path, "r+b") as f:
                f.truncate(pos)
        return out

    # ---- subscriptions of reliable topics: JSON lines, the last one per name wins
    def save_subscription(self, topic, sub, sub_type, cursor):
        if self.root:
            line = json.dumps({"sub": sub, "type": sub_type, "cursor": cursor})
            self._append(self._path("topics", _fname(topic) + ".subs"), (line + "\n").encode())

    def load_subscriptions(self, topic):
        """{name: (type, cursor)}"""
        subs = {}
        path = self._path("topics", _fname(topic) + ".subs") if self.root else None
        if not path or not os.path.exists(path):
            return subs
        with open(path, "rb") as f:
            for raw in f:
                try:
                    rec = json.loads(raw)
                except ValueError:
                    continue
                subs[rec["sub"]] = (rec["type"], rec["cursor"])
        return subs
