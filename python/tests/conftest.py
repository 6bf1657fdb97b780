"""Fixtures of the Python module's tests: a real busd per test, from the build (BUS_BIN_DIR,
default build/bin), and libbus.so.0 from the build (BUS_LIBRARY, default build/libbus)."""
import os
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("BUS_BIN_DIR", os.path.join(ROOT, "build", "bin"))
os.environ.setdefault("BUS_LIBRARY", os.path.join(os.path.dirname(BIN), "libbus", "libbus.so.0"))
sys.path.insert(0, os.path.join(ROOT, "python"))

import bus  # noqa: E402

_counter = [0]


def unique_bus():
    _counter[0] += 1
    return f"py-{os.getpid()}-{_counter[0]}"


@pytest.fixture
def busd():
    """A busd serving a fresh bus; yields its name; stopped (and checked to exit 0) after."""
    name = unique_bus()
    p = subprocess.Popen([os.path.join(BIN, "busd"), "--bus", name], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while True:
        try:
            bus.connect(name).close()
            break
        except bus.BrokerNotRunningError:
            if time.monotonic() > deadline or p.poll() is not None:
                p.kill()
                pytest.fail(f"busd did not start: {p.stderr.read()}")
            time.sleep(0.02)
    yield name
    p.terminate()
    assert p.wait(timeout=10) == 0
