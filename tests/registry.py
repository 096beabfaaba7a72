"""A minimal Docker registry (HTTP API v2, read-only) for pull tests with no network.

It serves one tiny image (one gzipped layer) under any repository name at the
tag "1", answers other tags with MANIFEST_UNKNOWN, and repositories under
"private/" with 401, as nvcr.io does without `docker login`. dockerd treats
registries on 127.0.0.0/8 as insecure, so plain HTTP works.
"""
import gzip
import hashlib
import io
import json
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tiny_image() -> tuple[bytes, dict]:
    """(manifest, blobs by digest) of an image holding one file."""
    layer_tar = io.BytesIO()
    with tarfile.open(fileobj=layer_tar, mode="w") as tar:
        payload = b"not a TensorRT image\n" * 20000   # big enough for progress events
        info = tarfile.TarInfo("README")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    layer = gzip.compress(layer_tar.getvalue(), mtime=0)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/false"]},
                         "rootfs": {"type": "layers", "diff_ids": [_digest(layer_tar.getvalue())]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config),
                   "digest": _digest(config)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(layer),
                    "digest": _digest(layer)}],
    }).encode()
    return manifest, {_digest(config): config, _digest(layer): layer}


class Registry:
    def __init__(self):
        manifest, blobs = tiny_image()
        handler = type("Handler", (_Handler,), {"manifest": manifest, "blobs": blobs})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


class _Handler(BaseHTTPRequestHandler):
    manifest: bytes
    blobs: dict

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self._answer(send_body=False)

    def do_GET(self):
        self._answer(send_body=True)

    def _answer(self, send_body):
        path = self.path.split("?")[0]
        if path == "/v2/":
            return self._send(200, b"{}", "application/json", send_body)
        if path.startswith("/v2/private/"):
            self.send_response(401)
            self.send_header("WWW-Authenticate", f'Basic realm="{self.headers.get("Host")}"')
            self.send_header("Content-Length", "0")
            return self.end_headers()
        repo_and_kind, _, reference = path[len("/v2/"):].rpartition("/")
        kind = repo_and_kind.rsplit("/", 1)[-1]
        if kind == "manifests" and reference in ("1", _digest(self.manifest)):
            return self._send(200, self.manifest, MANIFEST_TYPE, send_body, digest=_digest(self.manifest))
        if kind == "blobs" and reference in self.blobs:
            return self._send(200, self.blobs[reference], "application/octet-stream", send_body, digest=reference)
        code = "MANIFEST_UNKNOWN" if kind == "manifests" else "BLOB_UNKNOWN"
        body = json.dumps({"errors": [{"code": code, "message": code.lower().replace("_", " ")}]}).encode()
        self._send(404, body, "application/json", send_body)

    def _send(self, status, body, content_type, send_body, digest=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if digest:
            self.send_header("Docker-Content-Digest", digest)
        self.end_headers()
        if send_body:
            self.wfile.write(body)
