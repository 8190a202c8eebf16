"""One torch thread per test: these tests run many tiny operations, for which thread start-up
and contention with other processes on a shared machine cost far more than they save."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
