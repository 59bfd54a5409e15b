"""A real Kafka-protocol broker for the integration tests: tansu, in memory, on a free
loopback port (scripts/install-tansu.sh installs it; scripts/test-python.sh sets
TANSU_BIN)."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Tansu:
    """A running tansu broker."""

    def __init__(self, binary: str, log_dir: Path) -> None:
        self.port = _free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        url = f"tcp://{self.bootstrap}"
        self.log_path = log_dir / "tansu.log"
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"tansu did not listen on {self.port}: see {self.log_path}")
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@pytest.fixture(scope="session")
def tansu():
    binary = os.environ.get("TANSU_BIN")
    if not binary:
        pytest.skip("TANSU_BIN is not set: the integration tests need the tansu broker "
                    "(bash scripts/test-python.sh installs it and sets TANSU_BIN)")
    if not os.access(binary, os.X_OK):
        pytest.fail(f"TANSU_BIN={binary} is not an executable file")
    with tempfile.TemporaryDirectory(prefix="noctria-gate-it-") as log_dir:
        broker = Tansu(binary, Path(log_dir))
        try:
            yield broker
        finally:
            broker.stop()


@pytest.fixture
def prefix():
    """Fresh topic names for every test: tansu slows down on partitions of many batches,
    and no test sees another's records."""
    return f"it{uuid.uuid4().hex[:10]}."
