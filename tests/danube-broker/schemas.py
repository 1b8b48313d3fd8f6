"""danube_schema.SchemaRegistry in memory: subjects with ids and versions (no persistence)."""
import hashlib
import time

import grpc

from topics import BrokerError


class SchemaRegistry:
    def __init__(self):
        self.subjects = {}  # subject -> dict(id, type, compat, tags, versions=[dict])
        self.by_id = {}  # schema_id -> subject
        self.next_id = 1

    def has_subject(self, subject):
        return subject in self.subjects

    def _subject(self, subject):
        s = self.subjects.get(subject)
        if s is None:
            raise BrokerError(grpc.StatusCode.NOT_FOUND, "Subject '%s' not found" % subject)
        return s

    def register(self, req):
        fp = hashlib.sha256(req.schema_definition).hexdigest()
        s = self.subjects.get(req.subject)
        if s is None:
            s = self.subjects[req.subject] = dict(id=self.next_id, type=req.schema_type, compat="backward",
                                                  tags=list(req.tags), versions=[])
            self.by_id[self.next_id] = req.subject
            self.next_id += 1
        for v in s["versions"]:
            if v["fingerprint"] == fp:
                return s["id"], v["version"], False, fp
        version = len(s["versions"]) + 1
        s["versions"].append(dict(version=version, definition=req.schema_definition, type=req.schema_type,
                                  description=req.description, created_by=req.created_by,
                                  tags=list(req.tags), fingerprint=fp, created_at=int(time.time())))
        s["type"] = req.schema_type
        return s["id"], version, True, fp

    def get(self, schema_id, version=None):
        """(subject, subject record, version record); version None = latest."""
        subject = self.by_id.get(schema_id)
        if subject is None:
            raise BrokerError(grpc.StatusCode.NOT_FOUND, "Schema with id %d not found" % schema_id)
        s = self.subjects[subject]
        if version is None:
            return subject, s, s["versions"][-1]
        for v in s["versions"]:
            if v["version"] == version:
                return subject, s, v
        raise BrokerError(grpc.StatusCode.NOT_FOUND,
                          "Version %d of schema id %d not found" % (version, schema_id))

    def latest(self, subject):
        s = self._subject(subject)
        return subject, s, s["versions"][-1]

    def versions(self, subject):
        s = self._subject(subject)
        return s["id"], list(s["versions"])

    def set_compat(self, subject, mode):
        self._subject(subject)["compat"] = mode

    def list(self):
        return [(name, s) for name, s in sorted(self.subjects.items())]
