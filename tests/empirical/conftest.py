"""Fixtures shared by the empirical tests."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """The sweep's workers train on one thread: so do the tests that compare runs (tiny ops slow down badly on
    contended threads, and one thread fixes the reduction order train() is compared at)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
