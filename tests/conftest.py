import pytest
import torch

from cfglab import VE, VP, Linear

# Toy tensors: one thread per test process (pytest-xdist runs two), as the Makefile's OMP_NUM_THREADS=1 asks. On a
# busy two-core machine two threads each made training tests ten to thirty times slower.
torch.set_num_threads(1)

PATHS = {"VE": VE(), "VP": VP(), "Linear": Linear()}


@pytest.fixture(params=list(PATHS), ids=list(PATHS))
def path(request):
    return PATHS[request.param]


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Each test gets an empty model cache."""
    monkeypatch.setenv("CFGLAB_CACHE", str(tmp_path / "cache"))
