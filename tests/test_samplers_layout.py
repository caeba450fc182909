"""cfglab.samplers and cfglab.paths are small packages: every public name of a submodule is re-exported (so
``cl.ode``, ``cl.samplers.ddim_cfgpp`` and ``from cfglab.paths import PREDICTIONS`` keep working), each file reads
in one sitting, ``cfglab.samplers.PROGRESS_DELAY`` still controls the progress bar, and the benchmark's sampler set
holds DPM-Solver++(2M) at second order."""

import importlib
import sys
from pathlib import Path

import pytest
from test_package_layout import defined_names, submodules  # tests/ is on sys.path under pytest

import cfglab

PACKAGES = ["cfglab.samplers", "cfglab.paths"]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_of_a_submodule_is_re_exported_and_files_are_small(package):
    pkg = importlib.import_module(package)
    for sub in submodules(package):
        for name, obj in defined_names(sub).items():
            assert name in pkg.__all__ and getattr(pkg, name) is obj, f"{sub}.{name}"
    folder = Path(pkg.__file__).parent
    sizes = {p.name: len(p.read_text().splitlines()) for p in folder.glob("*.py")}
    assert all(n <= 250 for n in sizes.values()), sizes


def test_the_old_import_spellings_still_work():
    from cfglab.paths import PREDICTIONS, VE, VP, Coefficients, Linear, Path  # noqa: F401
    from cfglab.samplers import Trajectory, ddim_cfgpp, ode  # noqa: F401

    assert cfglab.ode is cfglab.samplers.ode is cfglab.samplers.continuous.ode
    assert cfglab.samplers.ddim_cfgpp is cfglab.samplers.discrete.ddim_cfgpp
    assert cfglab.Trajectory is cfglab.samplers.Trajectory and cfglab.Path is cfglab.paths.Path
    assert PREDICTIONS == ("eps", "x0", "score", "velocity", "v")
    for name in ("ode", "sde", "ddim", "ddpm", "langevin", "mala", "annealed_langevin"):
        assert getattr(cfglab, name) is getattr(cfglab.samplers, name)


def test_progress_delay_is_read_from_the_package(monkeypatch, capsys):
    import torch

    mix, path = cfglab.make("mixture"), cfglab.Linear()
    x = path.prior(4, 2, generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(cfglab.samplers, "PROGRESS_DELAY", 0.0)
    cfglab.samplers.dpmpp_2m(mix.score_fn(path), x, path, 3)
    assert "dpmpp_2m" in capsys.readouterr().err


def test_the_benchmark_measures_dpmpp_at_second_order():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks import samplers as bench

    assert "dpmpp_2m" in bench.METHODS and bench.METHODS[-1] == "euler_maruyama"
    res = bench.gaussian_errors(cfglab.VP(), (16, 32, 64, 128, 256), n=200, n_sde=2, spacing="logsnr")
    assert 1.85 < res["orders"]["dpmpp_2m"] < 2.25, res["orders"]
    ddim = {r["nfe"]: r["endpoint_rms"] for r in res["ddim"]}
    assert all(r["endpoint_rms"] < 0.25 * ddim[r["nfe"]] for r in res["dpmpp_2m"] if r["nfe"] >= 32)
