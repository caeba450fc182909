"""The benchmarks against closed forms (sampler convergence orders, the Gaussian's exact flow and Euler–Maruyama
law, DDIM == Euler), their bookkeeping, and the one-command smoke run ``benchmarks/run.py --quick``."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import cfglab as cl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import _common, recipes, samplers, tutorial  # noqa: E402

F64 = torch.float64
PATHS = {"Linear": cl.Linear(), "VP": cl.VP(), "VE": cl.VE()}
NFES = (16, 32, 64, 128, 256)   # orders are fitted over the last four: the asymptotic range of both paths


@pytest.mark.parametrize("name", list(PATHS))
def test_gaussian_score_is_the_mixtures_exact_score(name):
    path, gauss = PATHS[name], samplers.Gaussian()
    mix = cl.GaussianMixture(gauss.m[None], gauss.std)
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    for t in (0.01, 0.3, 0.9):
        tt = torch.full((50,), t, dtype=F64)
        assert torch.allclose(gauss.score(path)(x, tt), mix.score(x, t, path), atol=1e-10)


@pytest.mark.parametrize("name", list(PATHS))
def test_gaussian_flow_solves_the_probability_flow_ode(name):
    """d/du of the closed-form map equals the PF-ODE drift f x - g^2/2 score at the moved point (central
    differences), and the map sends p_t's mean and std to p_u's."""
    path, gauss = PATHS[name], samplers.Gaussian()
    x = torch.randn(20, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    t, h = 0.7, 1e-5
    for u in (0.2, 0.5):
        xu = gauss.flow(path, x, t, u)
        deriv = (gauss.flow(path, x, t, u + h) - gauss.flow(path, x, t, u - h)) / (2 * h)
        uu = torch.full((20,), u, dtype=F64)
        drift = path.ode_drift(xu, uu, gauss.score(path)(xu, uu))
        assert torch.allclose(deriv, drift, rtol=1e-6, atol=1e-6)
    mu_t, s_t = gauss.marginal(path, t)
    mu_u, s_u = gauss.marginal(path, 0.2)
    assert torch.allclose(gauss.flow(path, mu_t + s_t, t, 0.2), mu_u + s_u)


@pytest.mark.parametrize("name", ["Linear", "VP"])
def test_euler_is_first_order_and_heun_second_order_on_the_gaussian(name):
    """On the log-SNR grid, where NFE 32 to 256 is asymptotic for every ODE sampler (on the linear path's uniform
    grid Heun in sigma is still pre-asymptotic there: its fitted slope exceeds 2)."""
    res = samplers.gaussian_errors(PATHS[name], NFES, n=200, n_sde=200, spacing="logsnr")
    o = res["orders"]
    for m in ("euler_t", "ddim"):
        assert 0.9 < o[m] < 1.1, o
        assert 0.9 < res["variance_orders"][m] < 1.1
    for m in ("heun_t", "heun_sigma"):
        assert 1.85 < o[m] < 2.25, o
        assert 1.7 < res["variance_orders"][m] < 2.25
    assert 0.9 < o["euler_maruyama"] < 1.3, o                  # weak order of the exact Euler-Maruyama law
    for m in samplers.METHODS:                                 # errors shrink monotonically with NFE
        key = "variance_error" if m == "euler_maruyama" else "endpoint_rms"
        errs = [r[key] for r in res[m]]
        assert all(a > b for a, b in zip(errs, errs[1:])), (m, errs)


@pytest.mark.parametrize("name", list(PATHS))
def test_each_paths_default_ode_is_the_most_accurate_heun_at_few_steps(name):
    """The library's defaults (path.ode_variable, path.spacing) are the benchmark's choice, recomputed here at a
    small size: Heun in the variable and on the grid with the smallest spread error at NFE 8 to 32."""
    path = PATHS[name]
    per_spacing = {sp: samplers.gaussian_errors(path, (8, 16, 32), n=400, n_sde=2, spacing=sp)
                   for sp in samplers.SPACINGS}
    chosen = samplers.choose_defaults(per_spacing)
    assert (chosen["variable"], chosen["spacing"]) == (path.ode_variable, path.spacing), chosen["scores"]


def test_the_stored_sampler_results_chose_the_library_defaults():
    res = json.loads((ROOT / "benchmarks" / "results" / "samplers.json").read_text())
    for name, p in res["paths"].items():
        lib = {"variable": PATHS[name].ode_variable, "spacing": PATHS[name].spacing}
        assert {k: p["chosen"][k] for k in lib} == lib == p["library_defaults"], (name, p["chosen"])


def test_euler_maruyama_law_matches_cl_sde_and_converges_to_the_exact_marginal():
    path, gauss = cl.VP(), samplers.Gaussian()
    mu, s = gauss.marginal(path, path.t_max)
    g = torch.Generator().manual_seed(3)
    n, steps = 100_000, 24
    y = cl.sde(gauss.score(path), mu + s * torch.randn(n, 2, generator=g, dtype=F64), path, steps, generator=g,
               denoise=False)
    law_mean, law_var = gauss.em_law(path, steps, mu, float(s**2))
    assert ((y.mean(0) - law_mean).abs() < 5 * math.sqrt(law_var / n)).all()
    assert ((y.var(0) - law_var).abs() < 5 * law_var * math.sqrt(2 / n)).all()
    mu_min, s_min = gauss.marginal(path, path.t_min)
    fine_mean, fine_var = gauss.em_law(path, 4000, mu, float(s**2))
    assert abs(fine_var - float(s_min**2)) < 2e-3 * float(s_min**2)
    assert torch.allclose(fine_mean, mu_min, atol=2e-3)


def test_fit_order_recovers_a_power_law_and_nfes_are_checked():
    nfes = [2, 4, 8, 16, 32]
    assert samplers.fit_order(nfes, [3.0 * n**-1.5 for n in nfes]) == pytest.approx(1.5)
    assert samplers.fit_order(nfes, [0.0] * 5) is None
    for bad in ([4], [3, 5], [8, 4], [0, 2]):
        with pytest.raises(ValueError, match="nfes"):
            samplers.check_nfes(bad)


def test_tutorial_loss_is_flow_matching_on_the_linear_path():
    g = torch.Generator().manual_seed(4)
    x0, eps, t = torch.randn(64, 2, generator=g), torch.randn(64, 2, generator=g), torch.rand(64, generator=g)
    net = tutorial.TutorialMLP(width=16, depth=2)
    path = cl.Linear()
    expected = ((net(path.noise(x0, t, eps), t) - path.target("velocity", x0, eps, t)) ** 2).mean()
    assert torch.allclose(tutorial.tutorial_loss(net, x0, t, eps), expected, atol=1e-6)
    n_hidden = sum(isinstance(m, torch.nn.Linear) for m in tutorial.TutorialMLP().modules()) - 1
    config = tutorial.TutorialConfig()
    assert n_hidden == 4 and (config.batch_size, config.steps, config.lr) == (4096, 20_000, 1e-3)


def _run(reached_at, cpu, steps_done):
    hit = None if reached_at is None else {"train_cpu_seconds": reached_at[0], "step": reached_at[1]}
    return {"reached": hit, "train_cpu_seconds": cpu, "cpu_seconds_per_step": cpu / steps_done}


def test_time_ratio_is_steps_times_cost_and_a_lower_bound_when_a_tutorial_seed_missed():
    course = recipes.summary([_run((10.0, 1000), 20.0, 2000), _run((12.0, 1200), 20.0, 2000)])
    assert course["reached"] == 2 and course["train_cpu_seconds"]["mean"] == 11.0
    assert course["steps"]["mean"] == 1100 and course["train_cpu_seconds"]["interval"]["n"] == 2
    tut = recipes.summary([_run((220.0, 550), 800.0, 2000), _run((440.0, 1100), 800.0, 2000)])
    r = recipes.ratio(tut, course)
    assert r["kind"] == "measured" and r["cpu"] == pytest.approx(30.0)
    assert r["steps"] == pytest.approx(0.75) and r["cost_per_step"] == pytest.approx(40.0)
    missed = recipes.summary([_run((220.0, 550), 800.0, 2000), _run(None, 900.0, 2000)])
    missed["missed_cpu_seconds"] = [900.0]
    r = recipes.ratio(missed, course)
    assert r["kind"].startswith("lower bound") and r["cpu"] == pytest.approx((220 + 900) / 2 / 11)
    assert recipes.ratio(tut, recipes.summary([_run(None, 20.0, 2000), _run((10.0, 1000), 20.0, 2000)]))["cpu"] \
        is None


def test_the_chapters_benchmark_times_every_notebook_of_the_book():
    import yaml  # type: ignore[import-untyped]  # PyYAML, installed with jupyter-book

    from benchmarks import chapters

    timed = [p.relative_to(ROOT).as_posix() for p in chapters.pages()]
    assert timed[-1] == "book/benchmarks.ipynb" and timed[0].startswith("chapters/01_")
    assert set(timed[:-1]) == {p.relative_to(ROOT).as_posix() for p in (ROOT / "chapters").glob("[0-9][0-9]_*.ipynb")}

    def files(node):
        yield from ([node["file"]] if "file" in node else [])
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key) or []:
                yield from files(child)

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    notebooks = {f + ".ipynb" for f in files(toc) if (ROOT / (f + ".ipynb")).is_file()}
    assert notebooks <= set(timed), notebooks - set(timed)


def test_the_results_page_reads_the_current_format():
    import nbformat

    nb = nbformat.read(ROOT / "book" / "benchmarks.ipynb", as_version=4)
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert f"FORMAT = {_common.FORMAT} " in source
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
    assert nb.cells[1].metadata.get("tags") == ["setup"]


def test_quick_runs_refuse_to_write_into_the_results_folder():
    results = ROOT / "benchmarks" / "results"
    for cmd in ([sys.executable, "benchmarks/run.py", "--quick", "--out", str(results)],
                [sys.executable, "benchmarks/samplers.py", "--quick"]):
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0 and "results" in proc.stderr, proc.stderr


def test_run_quick_completes_and_writes_valid_json(tmp_path):
    results = ROOT / "benchmarks" / "results"
    before = {f.name: f.stat().st_mtime_ns for f in results.glob("*.json")} if results.is_dir() else {}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "benchmarks/run.py", "--quick", "--out", str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = {name: json.loads((tmp_path / f"{name}.json").read_text())
           for name in ("samplers", "core", "recipes", "attention", "chapters")}
    for name, res in out.items():
        assert res["benchmark"] == name and res["quick"] is True and res["format"] == _common.FORMAT
        assert {"date", "commit", "dirty", "machine", "load_average_at_end"} <= set(res)
        assert res["machine"]["torch_threads"] == 1
    assert {r["threads"] for r in out["core"]["training"]} == {1, 2}
    assert {r["model"] for r in out["core"]["training"]} == {"2D MLP", "digit UNet"}
    row = out["core"]["guidance"]["rows"][0]
    assert set(row["ms_per_step"]) == set(out["core"]["guidance"]["methods"])
    assert row["speedup_batched_vs_two_passes"] > 0
    run = out["recipes"]["runs"][0]
    assert {"course", "tutorial"} == set(run["recipes"]) and "time_ratio" in run and run["target_sw"] > 0
    assert run["exact_field"]["sw"] > 0 and run["eval_sets"] >= 2
    for rec in run["recipes"].values():
        assert len(rec["runs"]) == len(run["seeds"]) >= 2 and {"reached", "seeds"} <= set(rec["summary"])
        for seed_run in rec["runs"]:
            assert all({"step", "train_cpu_seconds", "train_wall_seconds", "sw"} <= set(h)
                       for h in seed_run["history"])
            assert "mmd" in seed_run["final"] and seed_run["final"]["step"] == seed_run["steps_done"]
    for p in out["samplers"]["paths"].values():
        assert set(p["spacings"]) == set(samplers.SPACINGS) and {"variable", "spacing"} <= set(p["chosen"])
        for r in p["spacings"].values():
            assert set(r["orders"]) == set(samplers.METHODS) and r["euler_sigma_vs_ddim_max_abs"] < 1e-10
    assert out["chapters"]["pages"][0]["wall_seconds"] > 0 and out["chapters"]["total"]["cpu_seconds"] > 0
    after = {f.name: f.stat().st_mtime_ns for f in results.glob("*.json")} if results.is_dir() else {}
    assert after == before  # the real results were not touched
