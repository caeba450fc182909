"""Checks for chapter 12, guidance beyond diffusion: CFG on next-token logits, inverse-CDF token sampling, and an
experiment: the per-token guided sampling loop with the prompt dropped from the context, judged by the law of the
strings it draws against the exact law of the Markov source."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from ..text import MarkovText, guided_log_probs, make_text, sample_prompted, sample_token
from ._core import Verdict, attempt, check_function

# -- (a) guided logits ----------------------------------------------------------------------------------------------


def _logit_inputs(g: torch.Generator) -> dict[str, Any]:
    n, v = int(torch.randint(2, 6, (1,), generator=g)), int(torch.randint(3, 7, (1,), generator=g))
    # raw logits with arbitrary row offsets: only differences within a row carry information
    cond = 2 * torch.randn(n, v, generator=g, dtype=torch.float64) + 3 * torch.randn(n, 1, generator=g,
                                                                                    dtype=torch.float64)
    uncond = 2 * torch.randn(n, v, generator=g, dtype=torch.float64) - 2
    w = 1.5 + 2.5 * float(torch.rand((), generator=g, dtype=torch.float64))
    return {"cond_logits": cond, "uncond_logits": uncond, "w": w}


def _normalised(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    # any logits that give the right distribution pass: compare after log_softmax
    return lambda **kw: torch.log_softmax(fn(**kw).to(torch.float64), -1)


def check_guided_logits(student: Callable[..., Any]) -> Verdict:
    """``guided_logits(cond_logits, uncond_logits, w)``: logits (n, V) whose softmax is the normalised
    ``p_c^w p_u^(1-w)``, i.e. ``log p_u + w (log p_c - log p_u)`` up to a constant per row."""
    sm, lsm = (lambda z: torch.softmax(z, -1)), (lambda z: torch.log_softmax(z, -1))
    mistakes = [
        ("you mixed PROBABILITIES, p_u + w (p_c - p_u): guidance on tokens combines LOG-probabilities (logits), so "
         "that the result is the geometric tilt p_c^w p_u^(1-w), which stays positive for every w.",
         lambda cond_logits, uncond_logits, w: sm(uncond_logits) + w * (sm(cond_logits) - sm(uncond_logits))),
        ("you returned probabilities, not logits: apply no softmax at the end (the sampler applies it), or return "
         "the log of your probabilities.",
         lambda cond_logits, uncond_logits, w: sm(lsm(uncond_logits) + w * (lsm(cond_logits) - lsm(uncond_logits)))),
        ("the scale is off by one: that is the paper form (1 + w) c - w u with w used as our scale. In this course "
         "w = 1 must return the conditional logits: u + w (c - u).",
         lambda cond_logits, uncond_logits, w: uncond_logits + (1 + w) * (cond_logits - uncond_logits)),
        ("cond and uncond are swapped: start from the unconditional logits and move w times towards the "
         "conditional ones, u + w (c - u).",
         lambda cond_logits, uncond_logits, w: cond_logits + w * (uncond_logits - cond_logits)),
        ("the difference is (c - u) times w, added to u; you scaled the conditional logits alone (w c is only a "
         "temperature change and ignores the unconditional model).",
         lambda cond_logits, uncond_logits, w: w * cond_logits),
    ]
    verdict = check_function("guided_logits", _wrap(student), _normalised(_ref_guided), _logit_inputs,
                             mistakes=[(e, _normalised(f)) for e, f in mistakes], rtol=1e-5, atol=1e-6, quiet=True)
    # the comparison ran on log_softmax-ed (keyword) wrappers; the cells below get the functions themselves
    verdict = replace(verdict, student=student, reference=_ref_guided)
    print(verdict)
    return verdict


def _ref_guided(cond_logits: Tensor, uncond_logits: Tensor, w: float) -> Tensor:
    return guided_log_probs(cond_logits, uncond_logits, w)


def _wrap(student: Callable[..., Any]) -> Callable[..., Any]:
    if not callable(student):
        return student

    def fn(**kw: Any) -> Any:
        out = student(**kw)
        return torch.log_softmax(out.to(torch.float64), -1) if isinstance(out, Tensor) else out
    return fn


# -- (b) inverse-CDF token sampling ---------------------------------------------------------------------------------


def _token_inputs(g: torch.Generator) -> dict[str, Any]:
    n, v = int(torch.randint(20, 40, (1,), generator=g)), int(torch.randint(3, 7, (1,), generator=g))
    logits = 2 * torch.randn(n, v, generator=g, dtype=torch.float64) + 1
    u = torch.rand(n, generator=g, dtype=torch.float64)
    return {"logits": logits, "u": u}


def check_sample_token(student: Callable[..., Any]) -> Verdict:
    """``sample_token(logits, u)``: the smallest index i with ``cumsum(softmax(logits))[i] > u``, shape (n,)."""
    def cdf_index(p: Tensor, u: Tensor) -> Tensor:
        return (p.cumsum(-1) <= u[:, None]).sum(-1).clamp(max=p.shape[-1] - 1)
    mistakes = [
        ("you took the cumulative sum of the raw logits: turn them into probabilities with a softmax first.",
         lambda logits, u: cdf_index(logits, u)),
        ("exp(logits) is not normalised: divide by its sum (that is the softmax) before the cumulative sum.",
         lambda logits, u: cdf_index(logits.exp(), u)),
        ("you returned the most likely token (argmax): that is greedy decoding, which ignores u and never samples "
         "the less likely letters.",
         lambda logits, u: logits.argmax(-1)),
        ("the index is off by one: return the FIRST i whose cumulative probability exceeds u (count the entries "
         "with cdf <= u; indices start at 0).",
         lambda logits, u: (cdf_index(torch.softmax(logits, -1), u) + 1).clamp(max=logits.shape[-1] - 1)),
        ("you walked the CDF from the wrong end (as if u were 1 - u): the first entry of the CDF is p_0.",
         lambda logits, u: cdf_index(torch.softmax(logits, -1), 1 - u)),
    ]
    return check_function("sample_token", student, sample_token, _token_inputs, mistakes=mistakes, rtol=0, atol=0)


# -- (c) the per-token CFG loop with the prompt dropped (an experiment) ---------------------------------------------

CFG_SAMPLES = 30_000  # draws the checker asks for: the empirical law then sits within about 0.01 (TV) of its target


def _source(g: torch.Generator) -> MarkovText:
    """A hidden three-letter, two-class Markov source with no near-zero probabilities (every entry >= 0.05)."""
    def rows(*shape: int) -> Tensor:
        p = 0.05 + torch.rand(*shape, generator=g, dtype=torch.float64)
        return p / p.sum(-1, keepdim=True)
    return MarkovText(rows(2, 3), rows(2, 3, 3), alphabet="xyz", length=6)


def _law(source: MarkovText, length: int, step: Callable[[Tensor], Tensor]) -> Tensor:
    """Probabilities (V^L,) of all continuations (lexicographic order) under a per-token sampler whose next-token
    log-probabilities after the continuation prefixes (V^i, i) are ``step(prefixes)``, (V^i, V)."""
    xs = source.all_sequences(length)
    logp = torch.zeros(xs.shape[0], dtype=torch.float64)
    digits = source.vocab ** torch.arange(length - 1, -1, -1)
    for i in range(length):
        lp = step(source.all_sequences(i))
        logp = logp + lp[(xs[:, :i] * digits[length - i:]).sum(-1), xs[:, i]]
    return logp.exp()


def _laws(source: MarkovText, prompt: Tensor, length: int, w: float) -> dict[str, Tensor]:
    """The exact law of the right sampler and of each classic slip, by enumeration."""
    def cond(pre: Tensor) -> Tensor:
        return source.next_log_prob(torch.cat([prompt.expand(pre.shape[0], -1), pre], 1))

    def uncond(pre: Tensor) -> Tensor:
        return source.next_log_prob(pre)

    def first(pre: Tensor) -> Tensor:  # the continuation's first-letter law at every step
        return source.next_log_prob(pre[:, :0])

    def mixed(pre: Tensor) -> Tensor:  # probabilities mixed, clipped at zero, renormalised
        p = (uncond(pre).exp() + w * (cond(pre).exp() - uncond(pre).exp())).clamp_min(1e-300)
        return (p / p.sum(-1, keepdim=True)).log()
    return {
        "right": _law(source, length, lambda p: guided_log_probs(cond(p), uncond(p), w)),
        "conditional": _law(source, length, cond),
        "unconditional": _law(source, length, uncond),
        "off by one": _law(source, length, lambda p: guided_log_probs(cond(p), uncond(p), w + 1)),
        "swapped": _law(source, length, lambda p: guided_log_probs(uncond(p), cond(p), w)),
        "probabilities": _law(source, length, mixed),
        "stale": _law(source, length, lambda p: guided_log_probs(cond(p), first(p), w)),
    }


_SLIPS = {
    "conditional": "your strings follow the plain conditional law p(x | prompt), as if w were 1: either the scale is "
                   "not used, or the prompt is in BOTH contexts. The unconditional term is the same function on the "
                   "continuation alone, next_log_prob(x[:, :i]), without the prompt.",
    "unconditional": "your strings ignore the prompt (they follow p(x), the continuation read as a fresh string): "
                     "the conditional term must read the prompt followed by the continuation so far.",
    "off by one": "your strings follow the tilt at scale w + 1: that is the paper form (1 + w) c - w u with w used "
                  "as our scale. In this course u + w (c - u), so that w = 1 is the plain conditional model.",
    "swapped": "the two terms are swapped: you start from the prompted log-probabilities and move w times towards "
               "the ones without the prompt (that is scale 1 - w). Start from the unconditional term: u + w (c - u).",
    "probabilities": "you mixed PROBABILITIES, p_u + w (p_c - p_u), and clipped the negative ones: guidance combines "
                     "LOG-probabilities, so that each letter is drawn from the tilt p_c^w p_u^(1-w).",
    "stale": "the unconditional term never sees the letters already drawn (it always reads an empty prefix): feed "
             "the continuation so far to both terms, next_log_prob(x[:, :i]) and next_log_prob(prompt + x[:, :i]).",
}


def _ref_cfg_sample(next_log_prob: Callable[[Tensor], Tensor], prompt: Tensor, n: int, length: int, w: float,
                    generator: torch.Generator) -> Tensor:
    out = sample_prompted(next_log_prob, prompt, n, length, w, generator=generator)
    return out if isinstance(out, Tensor) else out[0]


def check_cfg_sample(student: Callable[..., Any], *, quiet: bool = False) -> Verdict:
    """``cfg_sample(next_log_prob, prompt, n, length, w, generator)``: per-token CFG with the prompt dropped from the
    unconditional context (Sanchez et al. 2023). The checker runs it on two hidden Markov sources, with their exact
    ``next_log_prob``, and compares the law of the ``n`` strings it draws with the exact law of the guided sampler
    (:func:`cfglab.text.exact_prompted_law`): total variation within a bound set by the sample size. A wrong law
    is matched against the exact laws of the classic slips to say which one it is."""
    name = "cfg_sample"

    def verdict(passed: bool, message: str) -> Verdict:
        v = Verdict(passed, message, name, student, _ref_cfg_sample)
        if not quiet:
            print(v)
        return v

    g = torch.Generator().manual_seed(20261203)
    cases = [(_source(g), torch.tensor([[0, 2]]), 3, 2.5), (make_text(), torch.tensor([[0, 1, 2]]), 2, 3.0)]
    shown = []
    for k, (source, prompt, length, w) in enumerate(cases):
        out, failed = attempt(name, student, next_log_prob=source.next_log_prob, prompt=prompt.clone(),
                              n=CFG_SAMPLES, length=length, w=w, generator=torch.Generator().manual_seed(k))
        if failed is not None:
            return verdict(False, failed.message)
        if not isinstance(out, Tensor):
            return verdict(False, f"{name} should return a tensor of tokens, got {type(out).__name__}.")
        if out.shape != (CFG_SAMPLES, length):
            return verdict(False, f"{name} returned shape {tuple(out.shape)}, expected (n, length) = "
                                  f"({CFG_SAMPLES}, {length}): one row per string, the prompt not included.")
        if out.is_floating_point() or out.is_complex() or out.dtype == torch.bool:
            return verdict(False, f"{name} should return integer token ids (long), got dtype {out.dtype}.")
        if int(out.min()) < 0 or int(out.max()) >= source.vocab:
            return verdict(False, f"{name} returned token ids outside 0..{source.vocab - 1}.")
        laws = _laws(source, prompt, length, w)
        idx = (out.long() * source.vocab ** torch.arange(length - 1, -1, -1)).sum(-1)
        emp = torch.bincount(idx, minlength=source.vocab ** length).to(torch.float64) / CFG_SAMPLES
        tv = {key: 0.5 * float((emp - q).abs().sum()) for key, q in laws.items()}
        # E[TV] <= sqrt(2 / pi) / 2 * sum_k sqrt(q_k / n); four times that bound is far outside the sampling noise
        tol = 4 * 0.5 * (2 / math.pi) ** 0.5 * float(laws["right"].sqrt().sum()) / CFG_SAMPLES ** 0.5
        if tv["right"] > tol:
            slip = min(_SLIPS, key=lambda s: tv[s])
            if tv[slip] <= tol:
                return verdict(False, f"{name}: {_SLIPS[slip]}")
            worst = int((emp - laws["right"]).abs().argmax())
            word = source.decode(source.all_sequences(length)[worst:worst + 1])[0]
            greedy = float(emp.max()) > 0.5 and float(laws["right"].max()) < 0.5
            return verdict(False, f"{name}: the strings you draw do not follow the guided law (total variation "
                                  f"{tv['right']:.3f} from the exact law, beyond the {tol:.3f} that {CFG_SAMPLES} "
                                  f"draws allow; '{word}' has probability {float(laws['right'][worst]):.3f} but you "
                                  f"drew it {float(emp[worst]):.3f} of the time)."
                                  + (" Most draws are one string: did you take the argmax instead of sampling?"
                                     if greedy else " Draw each letter from softmax(u + w (c - u)) with the "
                                     "generator, and append it to the continuation before the next step."))
        shown.append(f"{tv['right']:.3f}")
    return verdict(True, f"{name} draws the exact guided law on 2 hidden sources (TV {', '.join(shown)}: "
                         "sampling noise).")
