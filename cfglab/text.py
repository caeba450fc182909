"""Guidance beyond diffusion: classifier-free guidance on the next-token logits of a tiny autoregressive model.

Ground truth first: :class:`MarkovText` is a labelled text source where each class is a first-order Markov chain
over a small alphabet, so ``log p(x | c)``, ``log p(x)``, the class posterior ``p(c | x)`` and every next-token
conditional ``p(x_i | x_<i, c)`` and ``p(x_i | x_<i)`` are exact. :class:`TextModel` is a tiny label-conditioned
GRU whose extra label index is the null label (with ``num_classes=0`` it is a plain language model);
:func:`fit_text` trains it, with label dropout when it has labels. Guidance acts on next-token log-probabilities
(Sanchez et al. 2023, eq. 7 with our scale convention):

    log p_w(x_i | x_<i, c) = log p(x_i | x_<i) + w (log p(x_i | x_<i, c) - log p(x_i | x_<i)) + const,

i.e. each token is drawn from the normalised tilt ``p(x_i | x_<i, c)^w p(x_i | x_<i)^(1-w)``. Two ways to get the
two terms:

* the **prompt** form of Sanchez et al.: ``c`` is a prompt, the conditional term is the model run on the prompt
  followed by the continuation, the unconditional one the *same* model run on the continuation alone (no
  retraining, no null token): :func:`sample_prompted`, exact law :func:`exact_prompted_law`;
* the **label** form: ``c`` is a class label and one network trained with label dropout gives both terms, as in
  diffusion (Ho & Salimans 2022): :func:`sample`, exact law :func:`exact_guided_law`.

``MarkovText.next_log_prob`` and ``TextModel.next_log_prob`` share one signature, so every sampler runs on the
exact source and on a trained model alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import torch
from torch import Tensor, nn

from . import _checks, _progress, cache
from .guidance import cfg
from .train import TrainConfig, _resolve_config, drop_labels


class MarkovText:
    """K classes, each a first-order Markov chain over ``len(alphabet)`` letters, with exact probabilities.

    Args:
        init: (K, V) initial-letter probabilities per class.
        trans: (K, V, V) transition matrices, ``trans[c, a, b] = p(x_i = b | x_{i-1} = a, c)``.
        weights: (K,) class prior (uniform if None).
        alphabet: the letters, for :meth:`decode`.
        class_names: names of the classes.
        length: default sequence length.
    """

    def __init__(self, init: Any, trans: Any, weights: Any = None, *, alphabet: str = "abcd",
                 class_names: Any = None, length: int = 8):
        self.init = torch.as_tensor(init, dtype=torch.float64)
        self.trans = torch.as_tensor(trans, dtype=torch.float64)
        if self.init.ndim != 2 or 0 in self.init.shape:
            raise ValueError(f"init must have shape (K, V) with K, V >= 1, got {tuple(self.init.shape)}")
        k, v = self.init.shape
        if self.trans.shape != (k, v, v):
            raise ValueError(f"trans must have shape {(k, v, v)}, got {tuple(self.trans.shape)}")
        if len(alphabet) != v:
            raise ValueError(f"alphabet must have {v} letters, got {alphabet!r}")
        w = torch.full((k,), 1.0 / k, dtype=torch.float64) if weights is None else torch.as_tensor(
            weights, dtype=torch.float64)
        if w.shape != (k,):
            raise ValueError(f"weights must have shape ({k},), got {tuple(w.shape)}")
        if any(not torch.isfinite(p).all() or (p < 0).any() for p in (self.init, self.trans, w)):
            raise ValueError("init, trans and weights must be finite and non-negative probabilities")
        if not (torch.allclose(self.init.sum(-1), torch.ones(k, dtype=torch.float64))
                and torch.allclose(self.trans.sum(-1), torch.ones(k, v, dtype=torch.float64))
                and torch.isclose(w.sum(), torch.tensor(1.0, dtype=torch.float64))):
            raise ValueError("init rows, trans rows and weights must each sum to one")
        self.weights = w
        self.alphabet = alphabet
        self.class_names = list(class_names) if class_names is not None else [f"class {i}" for i in range(k)]
        self.length = _checks.count("length", length)
        self.num_classes, self.vocab = k, v

    def __repr__(self) -> str:
        return f"MarkovText(classes={self.num_classes}, alphabet={self.alphabet!r}, length={self.length})"

    def fingerprint(self) -> str:
        """A hash of everything that defines the source (for the training cache)."""
        return cache.key({"init": self.init.tolist(), "trans": self.trans.tolist(), "w": self.weights.tolist(),
                          "length": self.length})

    def decode(self, x: Tensor) -> list[str]:
        """Token rows (n, L) as strings."""
        x = _checks.tokens("x", x, self.vocab)
        return ["".join(self.alphabet[int(i)] for i in row) for row in x]

    def encode(self, strings: str | Sequence[str]) -> Tensor:
        """Strings of one length as token rows (n, L) long (a single string gives one row): the inverse of
        :meth:`decode`, e.g. ``source.encode("abc")`` for a prompt."""
        rows = [strings] if isinstance(strings, str) else list(strings)
        if not rows or not all(isinstance(r, str) for r in rows) or len({len(r) for r in rows}) != 1:
            raise ValueError(f"strings must be a string or a non-empty list of strings of one length, got {strings!r}")
        bad = sorted({ch for r in rows for ch in r if ch not in self.alphabet})
        if bad:
            raise ValueError(f"strings may only use the letters {self.alphabet!r}, got {''.join(bad)!r}")
        return torch.tensor([[self.alphabet.index(ch) for ch in r] for r in rows], dtype=torch.long
                            ).reshape(len(rows), len(rows[0]))

    def sample(self, n: int, y: Any = None, generator: torch.Generator | None = None, *,
               length: int | None = None) -> tuple[Tensor, Tensor]:
        """``n`` sequences ``x`` (n, L) long and labels ``y`` (n,); classes from the prior when ``y`` is None."""
        n = _checks.count("n", n)
        length = self.length if length is None else _checks.count("length", length)
        if y is None:
            y = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        else:
            y = _checks.labels("y", y, n, self.num_classes, torch.device("cpu"))
        x = torch.empty(n, length, dtype=torch.long)
        x[:, 0] = torch.multinomial(self.init[y], 1, generator=generator)[:, 0]
        for i in range(1, length):
            x[:, i] = torch.multinomial(self.trans[y, x[:, i - 1]], 1, generator=generator)[:, 0]
        return x, y

    def class_log_prob(self, x: Tensor) -> Tensor:
        """``log p(x | c)`` for every class, shape (n, K), float64."""
        x = _checks.tokens("x", x, self.vocab)
        lp = self.init.log()[:, x[:, 0]].T  # (n, K)
        if x.shape[1] > 1:
            a, b = x[:, :-1], x[:, 1:]  # (n, L-1)
            lp = lp + self.trans.log()[:, a, b].sum(-1).T
        return lp

    def log_prob(self, x: Tensor, y: Any = None) -> Tensor:
        """Exact ``log p(x | y)``, or the marginal ``log p(x) = log sum_c p(c) p(x | c)`` when ``y`` is None."""
        lp = self.class_log_prob(x)
        if y is None:
            return torch.logsumexp(lp + self.weights.log(), -1)
        y = _checks.labels("y", y, lp.shape[0], self.num_classes, torch.device("cpu"))
        return lp.gather(1, y[:, None])[:, 0]

    def posterior(self, x: Tensor) -> Tensor:
        """Exact class posterior ``p(c | x)`` by Bayes' rule, shape (n, K)."""
        return torch.softmax(self.class_log_prob(x) + self.weights.log(), -1)

    def next_log_prob(self, prefix: Tensor, y: Any = None) -> Tensor:
        """Exact next-letter log-probabilities (n, V) after ``prefix`` (n, i), i >= 0.

        With a class: ``log p(x_i | x_{i-1}, c)``. Without (``y`` None): the marginal
        ``log sum_c p(c | x_<i) p(x_i | x_{i-1}, c)``, which depends on the whole prefix through the posterior.
        """
        prefix = _checks.tokens("prefix", prefix, self.vocab, min_len=0)
        n, i = prefix.shape
        per_class = (self.init.log().expand(n, -1, -1) if i == 0
                     else self.trans.log()[:, prefix[:, -1]].transpose(0, 1))  # (n, K, V)
        if y is not None:
            y = _checks.labels("y", y, n, self.num_classes, torch.device("cpu"))
            return per_class[torch.arange(n), y]
        log_post = (torch.log_softmax(self.class_log_prob(prefix) + self.weights.log(), -1) if i
                    else self.weights.log().expand(n, -1))  # (n, K)
        return torch.logsumexp(log_post[:, :, None] + per_class, 1)

    def all_sequences(self, length: int) -> Tensor:
        """Every sequence of ``length`` letters, shape (V^length, length): for exact sums by enumeration."""
        length = _checks.count("length", length, minimum=0)
        powers = self.vocab ** torch.arange(length - 1, -1, -1)  # lexicographic order: string k is k in base V
        return torch.arange(self.vocab ** length)[:, None] // powers % self.vocab


def make_text(name: str = "patterns", *, length: int = 8) -> MarkovText:
    """The course's text source. ``"patterns"``: three classes over ``abcd`` that favour stepping up
    (``abcdabcd``), repeating (``aaaabbbb``) or stepping down (``dcbadcba``); each favoured move has probability
    ``0.55`` and the other three share the rest, so the classes overlap on short strings."""
    if name != "patterns":
        raise ValueError(f"unknown text source {name!r}; available: 'patterns'")
    v, favoured = 4, 0.55
    trans = torch.full((3, v, v), (1 - favoured) / (v - 1), dtype=torch.float64)
    for a in range(v):
        trans[0, a, (a + 1) % v] = favoured
        trans[1, a, a] = favoured
        trans[2, a, (a - 1) % v] = favoured
    init = torch.full((3, v), 1.0 / v, dtype=torch.float64)
    return MarkovText(init, trans, alphabet="abcd", class_names=["up", "repeat", "down"], length=length)


class TextModel(nn.Module):
    """A tiny label-conditioned GRU language model: ``(tokens, y) -> next-token logits`` at every position.

    The input at step i is the embedding of the previous token (the start token ``vocab`` at i = 0) plus the
    label embedding; labels run over 0..num_classes where ``num_classes`` is the null label, as in
    :class:`cfglab.MLP`. ``forward(inputs, y, state=None)`` returns ``(logits (n, T, V), state)``.
    """

    def __init__(self, vocab: int, num_classes: int, *, width: int = 64, seed: int = 0):
        super().__init__()
        self.vocab = _checks.count("vocab", vocab)
        self.num_classes = _checks.count("num_classes", num_classes, minimum=0)
        self.null_label = self.num_classes
        self.start = self.vocab
        self.config = dict(kind="TextModel", vocab=self.vocab, num_classes=self.num_classes, width=width, seed=seed)
        g = torch.random.fork_rng()
        with g:
            torch.manual_seed(seed)
            self.token = nn.Embedding(self.vocab + 1, width)
            self.label = nn.Embedding(self.num_classes + 1, width)
            self.gru = nn.GRU(width, width, batch_first=True)
            self.head = nn.Linear(width, self.vocab)

    def forward(self, inputs: Tensor, y: Any = None, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Next-token logits (n, T, V) after input tokens (n, T) (ids 0..vocab, vocab being the start token), and
        the GRU state to continue from."""
        inputs = _checks.tokens("inputs", inputs, self.vocab + 1)
        n = inputs.shape[0]
        y = self.null_label if y is None else y
        y = _checks.labels("y", y, n, self.num_classes, inputs.device, allow_null=True)
        h = self.token(inputs) + self.label(y)[:, None, :]  # (n, T, width)
        out, state = self.gru(h, state)
        return self.head(out), state

    def log_probs(self, x: Tensor, y: Any = None) -> Tensor:
        """Next-token log-probabilities (n, L, V) along whole sequences x (n, L), teacher-forced."""
        x = _checks.tokens("x", x, self.vocab)
        start = torch.full((x.shape[0], 1), self.start, dtype=torch.long, device=x.device)
        logits, _ = self(torch.cat([start, x[:, :-1]], 1), y)
        return torch.log_softmax(logits, -1)

    def next_log_prob(self, prefix: Tensor, y: Any = None) -> Tensor:
        """Log-probabilities (n, V) of the next token after ``prefix`` (n, i), i >= 0 (i = 0: the first token),
        with label ``y`` (None: the null label). The same call as :meth:`MarkovText.next_log_prob`, so the model
        and the exact source are interchangeable in :func:`sample_prompted`."""
        prefix = _checks.tokens("prefix", prefix, self.vocab, min_len=0)
        start = torch.full((prefix.shape[0], 1), self.start, dtype=torch.long, device=prefix.device)
        logits, _ = self(torch.cat([start, prefix], 1), y)
        return torch.log_softmax(logits[:, -1], -1)


def _text_model(model: Any) -> TextModel:
    if not isinstance(model, TextModel):
        raise TypeError(f"model must be a cfglab.TextModel, got {type(model).__name__}")
    return model


def text_loss(model: TextModel, x: Tensor, y: Any = None) -> Tensor:
    """Mean next-token cross-entropy (nats per token) of ``model`` on sequences x (n, L) with labels y."""
    x = _checks.tokens("x", x, _text_model(model).vocab)
    lp = model.log_probs(x, y)
    return -lp.gather(2, x[:, :, None]).mean()


def fit_text(model: TextModel, source: MarkovText, config: TrainConfig | None = None, *, progress: bool = True,
             use_cache: bool = True, **overrides: Any) -> list[float]:
    """Train ``model`` on fresh batches of ``source`` with label dropout ``config.p_uncond`` to the null label
    (Ho & Salimans 2022, alg. 1, transplanted to tokens); returns the per-step losses. Same schedule, batches,
    seeding and cache as :func:`cfglab.fit`. A model with ``num_classes=0`` is a plain language model of the whole
    source: the labels are not used (every string is read with the one null label) and ``p_uncond`` plays no part."""
    config = _resolve_config(config, overrides)
    _text_model(model)
    if not isinstance(source, MarkovText):
        raise TypeError(f"source must be a cfglab.MarkovText (e.g. cfglab.make_text()), got {type(source).__name__}")
    if source.vocab != model.vocab or model.num_classes not in (0, source.num_classes):
        raise ValueError(f"model has vocab={model.vocab}, num_classes={model.num_classes} but source has "
                         f"{source.vocab} letters and {source.num_classes} classes (num_classes=0: a plain language "
                         f"model)")
    k = cache.key({"model": model.config, "data": source.fingerprint(), "train": asdict(config)}) if use_cache \
        else None
    extras = cache.restore(model, k) if k else None
    if extras is not None:
        model.eval()
        stored = extras.get("__losses__")
        return [float(v) for v in stored.tolist()] if stored is not None else []
    g = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    losses: list[float] = []
    model.train()
    with _progress.bar(config.steps, "training TextModel", disable=not progress) as bar:
        for step in range(config.steps):
            for group in opt.param_groups:
                group["lr"] = config.lr_at(step)
            x, y = source.sample(config.batch_size, generator=g)
            y = (torch.zeros_like(y) if model.num_classes == 0  # a plain language model: only the null label
                 else drop_labels(y, config.p_uncond, model.null_label, g))
            loss = text_loss(model, x, y)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training stopped at step {step}: the loss became {loss.item()}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            losses.append(loss.item())
            if step % 50 == 0 or step == config.steps - 1:
                window = losses[-50:]
                bar.set_postfix(loss=f"{sum(window) / len(window):.4f}", refresh=False)
                bar.update(step + 1 - bar.n)
        tail = losses[-50:]
        bar.summary = f"trained TextModel: {len(losses)} steps, final loss {sum(tail) / max(1, len(tail)):.4f}"
    model.eval()
    if k:
        cache.save(k, {**model.state_dict(), "__losses__": torch.tensor(losses, dtype=torch.float64)})
    return losses


def guided_log_probs(cond: Tensor, uncond: Tensor, scale: float) -> Tensor:
    """CFG on next-token distributions (Sanchez et al. 2023, eq. 7): combine the LOG-probabilities,
    ``log_softmax(u + scale (c - u))`` with ``c, u`` log-softmaxed; the result is the normalised tilt
    ``p_c^scale p_u^(1-scale)``. Raw logits give the same answer (row constants cancel in the softmax)."""
    return torch.log_softmax(cfg(torch.log_softmax(cond, -1), torch.log_softmax(uncond, -1), scale), -1)


def sample_token(logits: Tensor, u: Tensor) -> Tensor:
    """Inverse-CDF draw from ``softmax(logits)`` (n, V) with uniforms ``u`` (n,): the smallest index whose
    cumulative probability exceeds u, shape (n,) long."""
    logits = _checks.tensor("logits", logits, ndim=2, finite=False)
    u = _checks.tensor("u", u, ndim=1)
    if u.shape[0] != logits.shape[0] or (u < 0).any() or (u > 1).any():
        raise ValueError(f"u must hold {logits.shape[0]} uniforms in [0, 1], one per row of logits, got shape "
                         f"{tuple(u.shape)}")
    cdf = torch.softmax(logits, -1).cumsum(-1)
    return (cdf <= u[:, None]).sum(-1).clamp(max=logits.shape[-1] - 1)


@torch.no_grad()
def sample(model: TextModel, y: Any, n: int, length: int, scale: float = 1.0, *, negative: Any = None,
           generator: torch.Generator | None = None, return_log_probs: bool = False
           ) -> Tensor | tuple[Tensor, Tensor]:
    """Guided ancestral sampling: at each step ONE forward pass over the doubled batch with labels
    ``[y, null]`` (or ``[y, negative]``: negative prompting), then :func:`guided_log_probs` and
    :func:`sample_token`. ``scale == 1`` without a negative runs the plain conditional model only.
    Returns tokens (n, length), and with ``return_log_probs`` also the sampling log-probabilities (n, length, V)."""
    scale = _checks.scalar("scale", scale)
    n = _checks.count("n", n)
    length = _checks.count("length", length)
    yy = _checks.labels("y", y, n, _text_model(model).num_classes, torch.device("cpu"))
    plain = scale == 1.0 and negative is None
    if plain:
        labels = yy
    else:
        other = (torch.full((n,), model.null_label, dtype=torch.long) if negative is None
                 else _checks.labels("negative", negative, n, model.num_classes, torch.device("cpu")))
        labels = torch.cat([yy, other])
    m = labels.shape[0]
    token = torch.full((m, 1), model.start, dtype=torch.long)
    state, xs, lps = None, [], []
    for _ in range(length):
        logits, state = model(token, labels, state)  # (m, 1, V)
        logits = logits[:, 0]
        lp = torch.log_softmax(logits, -1) if plain else guided_log_probs(logits[:n], logits[n:], scale)
        nxt = sample_token(lp, torch.rand(n, generator=generator, dtype=lp.dtype))
        xs.append(nxt)
        lps.append(lp)
        token = (nxt if plain else torch.cat([nxt, nxt]))[:, None]
    x = torch.stack(xs, 1)
    return (x, torch.stack(lps, 1)) if return_log_probs else x


def _per_token_law(source: MarkovText, length: int, scale: float, cond: Callable[[Tensor], Tensor],
                   uncond: Callable[[Tensor], Tensor]) -> tuple[Tensor, Tensor]:
    """All sequences (V^L, L) and ``prod_i tilt_i(x_i)``, the tilt of :func:`guided_log_probs` between the exact
    next-letter laws ``cond(prefixes)`` and ``uncond(prefixes)`` (each (V^i, V) for the V^i prefixes of length i)."""
    xs = source.all_sequences(length)
    logp = torch.zeros(xs.shape[0], dtype=torch.float64)
    digits = source.vocab ** torch.arange(length - 1, -1, -1)  # xs is in lexicographic (base-V) order
    for i in range(length):
        prefixes = source.all_sequences(i)  # the V^i distinct prefixes, (V^i, i)
        tilt = guided_log_probs(cond(prefixes), uncond(prefixes), scale)
        row = (xs[:, :i] * digits[length - i:]).sum(-1)  # index of each string's prefix among the V^i prefixes
        logp = logp + tilt[row, xs[:, i]]
    return xs, logp.exp()


def exact_guided_law(source: MarkovText, y: int, scale: float, length: int, *, negative: int | None = None
                     ) -> tuple[Tensor, Tensor]:
    """The exact law of per-token guided sampling with the source's true conditionals, by enumeration:
    returns (all sequences (V^L, L), their probabilities (V^L,)), ``prod_i tilt_i(x_i)`` with
    ``tilt_i = normalise(p(x_i | x_<i, y)^scale p(x_i | x_<i, other)^(1-scale))``."""
    scale = _checks.scalar("scale", scale)
    length = _checks.count("length", length)
    if y is not None:
        _checks.labels("y", y, 1, source.num_classes, torch.device("cpu"))
    return _per_token_law(source, length, scale, lambda p: source.next_log_prob(p, y),
                          lambda p: source.next_log_prob(p, negative))


def _prompt(name: str, prompt: Any, n: int) -> Tensor:
    """A prompt as token rows (n, P): from (P,), (1, P) or (n, P) integer tokens (P = 0 allowed)."""
    if not isinstance(prompt, Tensor):
        raise TypeError(f"{name} must be an integer tensor of tokens of shape (P,) or (n, P), e.g. "
                        f"source.encode('abc'), got {type(prompt).__name__}")
    if prompt.is_floating_point() or prompt.is_complex() or prompt.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer token ids, got dtype {prompt.dtype}")
    p = prompt.long()
    p = p[None] if p.ndim == 1 else p
    if p.ndim != 2 or p.shape[0] not in (1, n):
        raise ValueError(f"{name} must have shape (P,), (1, P) or ({n}, P), got {tuple(prompt.shape)}")
    if p.numel() and int(p.min()) < 0:
        raise ValueError(f"{name} must hold token ids >= 0, got {int(p.min())}")
    return p.expand(n, -1)


def exact_prompted_law(source: MarkovText, prompt: Tensor, scale: float, length: int, *,
                       negative_prompt: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The exact law of per-token CFG with the prompt dropped from the context (Sanchez et al. 2023, eq. 7): each
    letter of the continuation is drawn from ``normalise(p(x_i | prompt, x_<i)^scale p(x_i | x_<i)^(1-scale))``,
    where the second law reads the continuation alone as a fresh string (or after ``negative_prompt``), with the
    source's exact next-letter laws. Returns (all continuations (V^L, L), their probabilities (V^L,))."""
    scale = _checks.scalar("scale", scale)
    length = _checks.count("length", length)
    if not isinstance(source, MarkovText):
        raise TypeError(f"source must be a cfglab.MarkovText, got {type(source).__name__}")
    pos = _checks.tokens("prompt", _prompt("prompt", prompt, 1), source.vocab, min_len=0)
    neg = (pos[:, :0] if negative_prompt is None
           else _checks.tokens("negative_prompt", _prompt("negative_prompt", negative_prompt, 1), source.vocab,
                               min_len=0))

    def context(head: Tensor) -> Callable[[Tensor], Tensor]:
        return lambda pre: source.next_log_prob(torch.cat([head.expand(pre.shape[0], -1), pre], 1))
    return _per_token_law(source, length, scale, context(pos), context(neg))


def sample_prompted(next_log_prob: Callable[[Tensor], Tensor], prompt: Tensor, n: int, length: int,
                    scale: float = 1.0, *, negative_prompt: Tensor | None = None,
                    generator: torch.Generator | None = None, return_log_probs: bool = False
                    ) -> Tensor | tuple[Tensor, Tensor]:
    """Per-token CFG with the prompt dropped from the context (Sanchez et al. 2023, eq. 7): at each step the
    conditional log-probabilities are ``next_log_prob(prompt + x_<i)`` and the unconditional ones the same
    function on the continuation alone, ``next_log_prob(x_<i)`` (or on ``negative_prompt + x_<i``); they are
    combined by :func:`guided_log_probs` and a token is drawn by :func:`sample_token`. ``next_log_prob`` is any
    ``prefix (m, i) -> log-probs (m, V)``: a :class:`TextModel`'s or the exact :class:`MarkovText`'s method.
    ``scale == 1`` without a negative prompt calls the conditional context only. Returns the continuations
    (n, length), and with ``return_log_probs`` also the sampling log-probabilities (n, length, V)."""
    next_log_prob = _checks.function("next_log_prob", next_log_prob)
    scale = _checks.scalar("scale", scale)
    n = _checks.count("n", n)
    length = _checks.count("length", length)
    pos = _prompt("prompt", prompt, n)
    neg = pos[:, :0] if negative_prompt is None else _prompt("negative_prompt", negative_prompt, n)
    plain = scale == 1.0 and negative_prompt is None
    x = torch.zeros(n, 0, dtype=torch.long)
    lps = []
    for _ in range(length):
        cond = next_log_prob(torch.cat([pos, x], 1))  # (n, V): the prompt in the context
        lp = torch.log_softmax(cond, -1) if plain else guided_log_probs(cond, next_log_prob(torch.cat([neg, x], 1)),
                                                                         scale)  # prompt dropped
        nxt = sample_token(lp, torch.rand(n, generator=generator, dtype=lp.dtype))
        x = torch.cat([x, nxt[:, None]], 1)
        lps.append(lp)
    return (x, torch.stack(lps, 1)) if return_log_probs else x


def tilted_sequence_law(source: MarkovText, y: int, scale: float, length: int, *, negative: int | None = None
                        ) -> tuple[Tensor, Tensor]:
    """The sequence-level tilt ``p(x | y)^scale p(x)^(1-scale)`` normalised over all sequences of ``length``
    (what CFG is often said to sample), by enumeration: (sequences, probabilities)."""
    scale = _checks.scalar("scale", scale)
    length = _checks.count("length", length)
    if y is not None:
        _checks.labels("y", y, 1, source.num_classes, torch.device("cpu"))
    xs = source.all_sequences(length)
    lc, lu = source.log_prob(xs, y), source.log_prob(xs, negative)
    return xs, torch.softmax(lu + scale * (lc - lu), 0)
