"""One local Ray instance for every test of the runtime (starting one costs seconds)."""

import pytest


@pytest.fixture(scope="session")
def ray_local():
    from actors.runtime import ray_session

    with ray_session(num_cpus=2):
        yield
