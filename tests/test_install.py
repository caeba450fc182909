"""cl.require: installs an optional package only when it is missing or too old, and fails with one sentence."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

import cfglab as cl
from cfglab import install


def _fake_pip(monkeypatch: pytest.MonkeyPatch, returncode: int, stderr: str = "", after: str | None = "9.9.9"):
    calls: list[list[str]] = []

    def run(command: list[str], **kwargs: object) -> SimpleNamespace:
        calls.append(command)
        if returncode == 0:
            monkeypatch.setattr(install, "_installed", lambda name: after)
        return SimpleNamespace(returncode=returncode, stderr=stderr, stdout="")

    monkeypatch.setattr(subprocess, "run", run)
    return calls


def test_satisfied_requirement_runs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_pip(monkeypatch, 1, "must not run")
    have = install._installed("numpy")
    assert have is not None
    assert cl.require("numpy>=1.0") == have
    assert cl.require("numpy") == have
    assert calls == []


def test_missing_package_is_installed_with_this_python(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_pip(monkeypatch, 0, after="0.42.1")
    monkeypatch.setattr(install, "_installed", lambda name: None)
    assert cl.require("not-a-real-package-xyz>=0.35") == "0.42.1"
    assert calls == [[sys.executable, "-m", "pip", "install", "-q", "not-a-real-package-xyz>=0.35"]]


def test_too_old_package_is_upgraded(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_pip(monkeypatch, 0, after="0.35.0")
    monkeypatch.setattr(install, "_installed", lambda name: "0.34.9")
    assert cl.require("diffusers>=0.35") == "0.35.0"
    assert len(calls) == 1 and calls[0][-1] == "diffusers>=0.35"


def test_pip_failure_is_one_sentence_naming_the_requirement(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_pip(monkeypatch, 1, "Collecting x\nERROR: No matching distribution found for diffusers>=99")
    monkeypatch.setattr(install, "_installed", lambda name: "0.30.0")
    with pytest.raises(install.SetupError) as err:
        cl.require("diffusers>=99")
    message = str(err.value)
    assert "diffusers>=99" in message and "found 0.30.0" in message
    assert "No matching distribution found" in message
    assert err.value._render_traceback_() == [message]          # IPython prints this line and no traceback


def test_pip_success_without_the_package_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_pip(monkeypatch, 0, after=None)
    monkeypatch.setattr(install, "_installed", lambda name: None)
    with pytest.raises(install.SetupError, match="still not installed"):
        cl.require("ghost>=1")


@pytest.mark.parametrize("version, release", [("0.35.1", (0, 35, 1)), ("2.1.2+cu121", (2, 1, 2)),
                                              ("1.0rc1", (1, 0)), ("10", (10,))])
def test_release_numbers(version: str, release: tuple[int, ...]) -> None:
    assert install._release(version) == release
    assert install._release("0.9") < install._release("0.35")    # numeric, not string, order


@pytest.mark.parametrize("bad", ["", "diffusers<0.35", "diffusers>=", "diffusers == 1", "a b"])
def test_bad_requirement_is_named(bad: str) -> None:
    with pytest.raises(ValueError, match="requirement must be 'name' or 'name>=version'"):
        cl.require(bad)


def test_requirement_must_be_a_string() -> None:
    with pytest.raises(TypeError, match="requirement must be a string"):
        cl.require(0.35)  # type: ignore[arg-type]


def test_check_only_never_runs_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_pip(monkeypatch, 0)
    monkeypatch.setattr(install, "_installed", lambda name: "2.1.2+cu121")
    with pytest.raises(install.SetupError, match=r'needs torch>=2.6 \(found 2.1.2\+cu121\)\. Upgrade it'):
        cl.require("torch>=2.6", install=False)
    assert calls == []
    assert cl.require("torch>=2.1", install=False) == "2.1.2+cu121"
