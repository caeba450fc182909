"""cfglab.text: the Markov text source against exact sums, and guidance on token distributions."""

import torch

from cfglab import text as T


def test_source_normalises_and_posterior_sums_to_one():
    src = T.make_text()
    xs = src.all_sequences(5)
    for y in (0, 1, 2, None):
        assert abs(src.log_prob(xs, y).exp().sum().item() - 1) < 1e-12
    assert torch.allclose(src.posterior(xs).sum(-1), torch.ones(len(xs), dtype=torch.float64))


def test_next_log_prob_is_the_chain_rule():
    src = T.make_text()
    xs = src.all_sequences(4)
    for y in (1, None):
        total = sum(src.next_log_prob(xs[:, :i], y).gather(1, xs[:, i:i + 1])[:, 0] for i in range(4))
        assert torch.allclose(total, src.log_prob(xs, y))


def test_sample_matches_exact_first_transition():
    src = T.make_text()
    x, y = src.sample(20000, y=0, generator=torch.Generator().manual_seed(0), length=2)
    up = ((x[:, 1] - x[:, 0]) % 4 == 1).float().mean().item()
    assert abs(up - 0.55) < 0.02


def test_guided_log_probs_is_the_normalised_tilt():
    g = torch.Generator().manual_seed(0)
    c, u = torch.randn(3, 5, generator=g, dtype=torch.float64), torch.randn(3, 5, generator=g, dtype=torch.float64)
    pc, pu = torch.softmax(c, -1), torch.softmax(u, -1)
    tilt = pc**2.5 * pu**-1.5
    assert torch.allclose(T.guided_log_probs(c, u, 2.5).exp(), tilt / tilt.sum(-1, keepdim=True))
    assert torch.allclose(T.guided_log_probs(c, u, 1.0), torch.log_softmax(c, -1))


def test_sample_token_inverse_cdf():
    logits = torch.log(torch.tensor([[0.2, 0.3, 0.5]] * 4, dtype=torch.float64))
    u = torch.tensor([0.1, 0.25, 0.6, 0.999], dtype=torch.float64)
    assert T.sample_token(logits, u).tolist() == [0, 1, 2, 2]


def test_guided_law_at_scale_one_is_the_conditional_and_differs_from_the_tilt_above():
    src = T.make_text()
    xs, p1 = T.exact_guided_law(src, 0, 1.0, 4)
    assert torch.allclose(p1, src.log_prob(xs, 0).exp())
    _, q1 = T.tilted_sequence_law(src, 0, 1.0, 4)
    assert torch.allclose(q1, p1)
    _, p3 = T.exact_guided_law(src, 0, 3.0, 4)
    _, q3 = T.tilted_sequence_law(src, 0, 3.0, 4)
    assert abs(p3.sum().item() - 1) < 1e-12 and 0.5 * (p3 - q3).abs().sum().item() > 0.1


def test_model_sampler_shapes_and_plain_path():
    src = T.make_text()
    m = T.TextModel(src.vocab, src.num_classes, width=16, seed=0)
    x, lp = T.sample(m, 1, 7, 5, 2.0, generator=torch.Generator().manual_seed(0), return_log_probs=True)
    assert x.shape == (7, 5) and lp.shape == (7, 5, 4)
    assert torch.allclose(lp.exp().sum(-1), torch.ones(7, 5))
    # scale 1 with no negative equals the teacher-forced conditional model
    x1, lp1 = T.sample(m, 1, 7, 5, 1.0, generator=torch.Generator().manual_seed(0), return_log_probs=True)
    with torch.no_grad():
        assert torch.allclose(lp1, m.log_probs(x1, 1), atol=1e-5)


def test_encode_is_the_inverse_of_decode():
    src = T.make_text()
    x, _ = src.sample(5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(src.encode(src.decode(x)), x)
    assert src.encode("abc").tolist() == [[0, 1, 2]]


def test_model_next_log_prob_is_the_teacher_forced_last_position():
    src = T.make_text()
    m = T.TextModel(src.vocab, src.num_classes, width=16, seed=0)
    x, y = src.sample(6, generator=torch.Generator().manual_seed(1), length=5)
    with torch.no_grad():
        full = m.log_probs(x, y)  # (6, 5, V)
        for i in range(5):
            assert torch.allclose(m.next_log_prob(x[:, :i], y), full[:, i], atol=1e-6)


def test_exact_prompted_law_at_scales_one_and_zero():
    """Scale 1: the continuation law after the prompt, p(prompt x) / p(prompt); scale 0: the continuation read as a
    fresh string, p(x); an empty prompt makes both terms one law, at every scale."""
    src = T.make_text()
    prompt = src.encode("abc")
    xs, q1 = T.exact_prompted_law(src, prompt, 1.0, 4)
    joint = src.log_prob(torch.cat([prompt.expand(len(xs), -1), xs], 1)) - src.log_prob(prompt)
    assert torch.allclose(q1, joint.exp(), atol=1e-14)
    _, q0 = T.exact_prompted_law(src, prompt, 0.0, 4)
    assert torch.allclose(q0, src.log_prob(xs).exp(), atol=1e-14)
    _, qe = T.exact_prompted_law(src, prompt[:, :0], 3.0, 4)
    assert torch.allclose(qe, src.log_prob(xs).exp(), atol=1e-14)
    _, q3 = T.exact_prompted_law(src, prompt, 3.0, 4)
    assert abs(q3.sum().item() - 1) < 1e-12 and 0.5 * (q3 - q1).abs().sum().item() > 0.1


def test_sample_prompted_with_the_exact_source_draws_the_exact_law():
    src = T.make_text()
    prompt = src.encode("abc")
    n, length = 40_000, 3
    x = T.sample_prompted(src.next_log_prob, prompt, n, length, 2.5, generator=torch.Generator().manual_seed(2))
    xs, q = T.exact_prompted_law(src, prompt, 2.5, length)
    idx = (x * src.vocab ** torch.arange(length - 1, -1, -1)).sum(-1)
    counts = torch.bincount(idx, minlength=len(xs)).double()
    chi2 = ((counts - n * q) ** 2 / (n * q)).sum().item()  # chi-square with 63 degrees of freedom
    assert chi2 < 63 + 6 * (2 * 63) ** 0.5
    # a negative prompt takes the place of the empty context
    neg = src.encode("aaa")
    xn = T.sample_prompted(src.next_log_prob, prompt, 20_000, 2, 2.0, negative_prompt=neg,
                           generator=torch.Generator().manual_seed(3))
    _, qn = T.exact_prompted_law(src, prompt, 2.0, 2, negative_prompt=neg)
    emp = torch.bincount((xn * torch.tensor([4, 1])).sum(-1), minlength=16).double() / 20_000
    assert 0.5 * (emp - qn).abs().sum().item() < 0.03


def test_a_plain_language_model_trains_without_labels():
    src = T.make_text()
    lm = T.TextModel(src.vocab, 0, width=32, seed=0)
    losses = T.fit_text(lm, src, steps=150, batch_size=128, lr=1e-2, progress=False, use_cache=False)
    assert sum(losses[-20:]) / 20 < losses[0] - 0.05
    x, _ = src.sample(500, generator=torch.Generator().manual_seed(4), length=4)
    with torch.no_grad():
        kl = sum((src.next_log_prob(x[:, :i]).exp() * (src.next_log_prob(x[:, :i]) - lm.next_log_prob(x[:, :i])))
                 .sum(-1).mean() for i in range(4)) / 4
    assert kl < 0.02
    # and the prompted sampler runs it
    out = T.sample_prompted(lm.next_log_prob, src.encode("ab"), 7, 3, 2.0, generator=torch.Generator())
    assert out.shape == (7, 3) and out.dtype == torch.long
