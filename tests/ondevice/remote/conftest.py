"""A real second model server (`ondevice serve` in another process) behind a fault-injecting loopback proxy."""

import pytest

from tests.ondevice.remote.fault_proxy import FaultProxy
from tests.ondevice.server.conftest import start_server, stop_server


@pytest.fixture(scope="session")
def remote_server():
    server = start_server("--max-queue", "8", "--ctx", "4096")  # larger than the local fixture's 1024
    yield server
    stop_server(server)


@pytest.fixture()
def proxy(remote_server):
    p = FaultProxy(remote_server.port)
    yield p
    p.close()


@pytest.fixture()
def remote_model(proxy):
    import ondevice

    model = ondevice.load(f"remote:smollm2-135m@{proxy.base_url}", timeout=60.0, max_retries=1)
    yield model
    model.close()


@pytest.fixture()
def impatient_remote(proxy):
    """The same remote with a 1.5 s timeout and no retry (for the slow-server cases)."""
    import ondevice

    model = ondevice.load(f"remote:smollm2-135m@{proxy.base_url}", timeout=1.5, max_retries=0)
    yield model
    model.close()
