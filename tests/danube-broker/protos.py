"""Finds (or generates with protoc) the Python message classes of proto/danube/*.proto."""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
FILES = ("DanubeApi", "SchemaRegistry", "DanubeAdmin")


def _complete(d):
    return d and all(os.path.exists(os.path.join(d, "danube", f + "_pb2.py")) for f in FILES)


def _generate():
    out = tempfile.mkdtemp(prefix="danube-broker-py-")
    atexit.register(shutil.rmtree, out, True)
    srcs = [os.path.join(PROTO_DIR, "danube", f + ".proto") for f in FILES]
    subprocess.run(["protoc", "-I", PROTO_DIR, "--python_out=" + out] + srcs, check=True)
    return out


def load(py_dir=None):
    """Returns (api, schema, admin) modules: --py-dir, else $DC_BUILD_DIR/py, else protoc."""
    build = os.environ.get("DC_BUILD_DIR")
    for d in (py_dir, os.path.join(build, "py") if build else None):
        if _complete(d):
            break
    else:
        d = _generate()
    sys.path.insert(0, d)
    from danube import DanubeAdmin_pb2, DanubeApi_pb2, SchemaRegistry_pb2

    return DanubeApi_pb2, SchemaRegistry_pb2, DanubeAdmin_pb2
