"""The weights cache survives corrupt, malicious and foreign files and interrupted runs; training that goes NaN
stops with a message. Every test gets an empty cache folder from conftest's ``_isolated_cache``."""

import os
import pickle
import warnings

import pytest
import torch

import cfglab.cache as cache
from cfglab import MLP, fit, make
from cfglab import digits as cl_digits
from cfglab import text as cl_text

MIX = make("mixture")
SMALL = dict(steps=12, batch_size=32, progress=False)


def _model(**kw):
    return MLP(2, 3, width=16, depth=1, **kw)


def _weights(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def folder():
    return cache.directory()


@pytest.fixture
def trained(folder):
    """One cached training run: (its cache file, its weights, its losses)."""
    m = _model()
    losses = fit(m, MIX, **SMALL)
    (file,) = folder.glob("*.pt")
    return file, _weights(m), losses


def _retrains_with_warning(file, clean, match):
    """Fitting again warns about ``file`` (by name), retrains to exactly the clean weights, and rewrites the entry."""
    m = _model()
    with pytest.warns(RuntimeWarning, match=match) as record:
        losses = fit(m, MIX, **SMALL)
    assert any(str(file) in str(w.message) for w in record), [str(w.message) for w in record]
    assert len(losses) == SMALL["steps"]
    assert _same(_weights(m), clean)
    assert cache.load(file.stem) is not None  # the entry was rewritten and is readable again
    m2 = _model(seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rewritten entry loads without complaint
        fit(m2, MIX, **SMALL)
    assert _same(_weights(m2), clean)


def test_random_bytes_are_reported_and_retrained(trained):
    file, clean, _ = trained
    file.write_bytes(os.urandom(300))
    _retrains_with_warning(file, clean, "unreadable")


def test_a_truncated_zip_is_reported_and_retrained(trained):
    file, clean, _ = trained
    data = file.read_bytes()
    assert data[:2] == b"PK"  # torch files are zip archives
    file.write_bytes(data[: len(data) // 2])
    _retrains_with_warning(file, clean, "unreadable")


class _Evil:
    """Unpickling this object would run ``open(marker, "w")``: the marker proves the file was unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")  # torch's note on a raw pickle
@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_a_malicious_pickle_is_never_unpickled(trained, tmp_path, writer):
    file, clean, _ = trained
    marker = tmp_path / "pwned"
    payload = {"trunk.inp.weight": _Evil(marker)}
    if writer == "pickle":
        file.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, file)
    _retrains_with_warning(file, clean, "unreadable")
    assert not marker.exists()


def test_a_foreign_file_with_other_names_is_reported_and_retrained(trained):
    file, clean, _ = trained
    torch.save({"encoder.weight": torch.zeros(3, 3), "__losses__": torch.zeros(12)}, file)
    _retrains_with_warning(file, clean, "does not fit this MLP")


def test_a_foreign_file_with_other_shapes_is_refused_before_touching_the_model(trained):
    """Same parameter names, other shapes (another width): nothing may be half-loaded into the model, so the
    retrained weights are exactly those of a clean run."""
    file, clean, _ = trained
    other = MLP(2, 3, width=8, depth=1)
    torch.save({**other.state_dict(), "__losses__": torch.zeros(12)}, file)
    _retrains_with_warning(file, clean, "does not fit this MLP")


def test_a_foreign_file_with_other_dtypes_is_refused(trained):
    file, clean, _ = trained
    torch.save({k: v.double() for k, v in clean.items()}, file)
    _retrains_with_warning(file, clean, "float64")


def test_restore_leaves_the_module_untouched_when_refusing(folder):
    m = _model()
    before = _weights(m)
    bad = {k: torch.full_like(v, 7.0) for k, v in before.items()}
    bad["time.freqs"] = torch.zeros(3)  # one wrong shape among many right ones
    cache.save("abc123", bad)
    with pytest.warns(RuntimeWarning, match=r"abc123\.pt.*time\.freqs"):
        assert cache.restore(m, "abc123") is None
    assert _same(_weights(m), before)


def _interrupt_at(monkeypatch, calls):
    """Make the optimiser's ``step`` raise KeyboardInterrupt at its ``calls``-th call, as a Ctrl-C would.
    (Pass ``monkeypatch.context()``, never call ``monkeypatch.undo()``: that would also undo the isolated cache.)"""
    count = {"n": 0}
    original = torch.optim.Adam.step

    def step(self, *args, **kwargs):
        count["n"] += 1
        if count["n"] == calls:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    return count


def test_an_interrupt_mid_training_leaves_no_entry_and_no_temp_file(folder, monkeypatch):
    with monkeypatch.context() as patch:
        count = _interrupt_at(patch, 5)
        with pytest.raises(KeyboardInterrupt):
            fit(_model(), MIX, **SMALL)
    assert count["n"] == 5
    assert not folder.exists() or not list(folder.iterdir())
    assert cache.directory() == folder
    fit(_model(), MIX, **SMALL)  # the next run trains and caches normally
    assert len(list(folder.glob("*.pt"))) == 1 and not list(folder.glob(".*"))


def test_an_interrupt_mid_text_training_leaves_nothing(folder, monkeypatch):
    src = cl_text.make_text()
    _interrupt_at(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        cl_text.fit_text(cl_text.TextModel(src.vocab, src.num_classes, width=8), src, steps=10, batch_size=16,
                         progress=False)
    assert not folder.exists() or not list(folder.iterdir())


def test_an_interrupt_while_writing_keeps_the_old_entry_and_no_temp_file(folder, monkeypatch):
    old = {"w": torch.arange(4.0)}
    cache.save("abc", old)
    real_save = torch.save

    def half_then_interrupt(obj, fh, *args, **kwargs):
        real_save(obj, fh, *args, **kwargs)
        fh.truncate(10)  # half-written
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(cache.torch, "save", half_then_interrupt)
        with pytest.raises(KeyboardInterrupt):
            cache.save("abc", {"w": torch.zeros(4)})
    assert [p.name for p in folder.iterdir()] == ["abc.pt"]
    assert torch.equal(cache.load("abc")["w"], old["w"])


def test_writes_go_to_a_temp_file_in_the_folder_then_os_replace(folder, monkeypatch):
    moves = []
    real_replace = os.replace

    def replace(src, dst):
        moves.append((os.fspath(src), os.fspath(dst)))
        assert os.path.getsize(src) > 0 and not os.path.exists(dst)  # complete before it becomes visible
        real_replace(src, dst)

    monkeypatch.setattr(cache.os, "replace", replace)
    out = cache.save("abc", {"w": torch.ones(3)})
    ((src, dst),) = moves
    assert os.path.dirname(src) == str(folder) and os.path.basename(src).startswith(".abc.")
    assert dst == str(out) == str(folder / "abc.pt")
    assert not os.path.exists(src)


def test_non_finite_data_stops_training_with_a_message():
    class Broken:
        num_classes, dim = 3, 2

        def sample(self, n, y=None, generator=None):
            x, y = MIX.sample(n, generator=generator)
            return x * float("nan"), y

    with pytest.raises(ValueError, match="x0 contains NaN"):
        fit(_model(), Broken(), steps=3, progress=False, use_cache=False)


def test_text_training_that_goes_nan_stops_with_a_message(monkeypatch):
    src = cl_text.make_text()
    calls = {"n": 0}
    real_loss = cl_text.text_loss

    def loss(*args, **kwargs):
        calls["n"] += 1
        out = real_loss(*args, **kwargs)
        return out * float("nan") if calls["n"] == 4 else out

    monkeypatch.setattr(cl_text, "text_loss", loss)
    with pytest.raises(FloatingPointError, match="training stopped at step 3"):
        cl_text.fit_text(cl_text.TextModel(src.vocab, src.num_classes, width=8), src, steps=10, batch_size=16,
                         progress=False, use_cache=False)


def test_digit_classifier_training_that_goes_nan_stops_with_a_message():
    with pytest.raises(FloatingPointError, match="training stopped at step"):
        cl_digits.train_classifier(30, lr=1e30, use_cache=False)


def test_a_change_to_the_package_changes_every_cache_key(monkeypatch):
    """Weights trained by an earlier version of the code must not load into a later one: the key carries a hash of
    the package's source."""
    from cfglab import cache

    description = {"model": {"kind": "MLP", "width": 8}}
    before = cache.key(description)
    monkeypatch.setattr(cache, "code_version", lambda: "another version")
    assert cache.key(description) != before
