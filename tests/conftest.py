"""One torch thread per test: these tests run many tiny operations, for which thread start-up
and contention with other processes on a shared machine cost far more than they save. And the
smallest config file of a real run, for tests of the run workflow."""

from pathlib import Path

import pytest
import torch

#: A one-epoch MLP on digits at 8 x 8: the cheapest run a config file can describe.
TINY_RUN = """
model = "mlp"
model_kwargs = {input_size = 8, hidden = {value = [8]}}
resolution = 8
epochs = 1
batch_size = 256
device = "cpu"
metrics = ["accuracy"]
"""


@pytest.fixture
def tiny_run_config():
    """``write(folder, extra="")``: write TINY_RUN plus ``extra`` lines to ``folder/c.toml``."""

    def write(folder: Path, extra: str = "") -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "c.toml"
        path.write_text(TINY_RUN + extra)
        return path

    return write


@pytest.fixture(autouse=True)
def _single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
