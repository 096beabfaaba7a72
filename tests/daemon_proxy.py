"""A stand-in for a Docker daemon elsewhere: a socket in front of the local dockerd, which a test can cut.

Listening on a unix socket path, or on a loopback TCP port (a remote engine, as DOCKER_HOST=tcp://... is).
"""
import socket
import threading
from pathlib import Path

DOCKERD = "/var/run/docker.sock"


class DaemonProxy:
    def __init__(self, path: Path | None = None):
        """On the unix socket `path`, or on a free loopback TCP port when path is None."""
        self.path = path
        if path is None:
            self.server = socket.socket(socket.AF_INET)
            self.server.bind(("127.0.0.1", 0))
            self.url = f"tcp://127.0.0.1:{self.server.getsockname()[1]}"
        else:
            self.server = socket.socket(socket.AF_UNIX)
            self.server.bind(str(path))
            self.url = f"unix://{path}"
        self.server.listen(16)
        self.open: list[socket.socket] = []
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            daemon = socket.socket(socket.AF_UNIX)
            daemon.connect(DOCKERD)
            self.open += [client, daemon]
            self.connections += 1
            for a, b in ((client, daemon), (daemon, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, target):
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass

    def cut(self):
        """As if the daemon died: the listener and every open connection closed."""
        self.server.close()
        if self.path is not None:
            self.path.unlink()
        for s in self.open:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
