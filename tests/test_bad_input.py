"""Bad input fails early with a ValueError/TypeError that names the argument, never a deep torch trace.

``CASES`` holds at least one bad call for every public callable of cfglab, keyed by its qualified name
(``module.function``, ``module.Class`` for the constructor, ``module.Class.method``). ``EXEMPT`` lists the few that
take no input worth checking, each with its reason. :func:`test_every_public_callable_has_a_case` introspects the
package, so a new public function cannot slip in without a case or a stated exemption.
"""

import importlib
import inspect
import math
import pkgutil

import matplotlib
import pytest
import torch

import cfglab
from cfglab import cache, claims, compare, data, digits, guidance, metrics, models, paths, plot, samplers, text, train

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

mix = data.make("mixture")
path = paths.Linear()
x = torch.zeros(4, 2)
meta = torch.zeros(4, 2, device="meta")  # right shape, wrong device: a device mismatch against CPU models
t4 = torch.full((4,), 0.5)
model = models.MLP(2, 3, width=16, depth=1)
clf = models.Classifier(2, 3, width=16, depth=1)
unet = models.UNet(8, 10, width=8)
score = mix.score_fn(path)
toy = data.make_attributes()
td = data.TensorData(torch.zeros(6, 2), torch.tensor([0, 1, 0, 1, 0, 1]))
src = text.make_text()
lm = text.TextModel(src.vocab, src.num_classes, width=8)
tok = torch.zeros(4, 3, dtype=torch.long)
dclf = digits.DigitClassifier(hidden=8, features=4)
fig, ax = plt.subplots()
plt.close(fig)
nan = math.nan


def _judge():
    return digits.Judge(per_class=2, sets=2, classifier=dclf)


def _rule(c, u, x_, t_):
    return guidance.cfg(c, u, 2.0)


CASES = [
    # (qualified name, description, call, exception, message fragment)
    # -- paths --------------------------------------------------------------------------------------------------
    ("paths.Path.__call__", "t > 1", lambda: path(1.5), ValueError, "t must lie in [0, 1]"),
    ("paths.Path.__call__", "t device", lambda: path(t4, meta), ValueError, "t is on device cpu but x is on meta"),
    ("paths.Path.prior", "n 0", lambda: path.prior(0, 2), ValueError, "n must be >= 1"),
    ("paths.Path.prior", "integer dtype", lambda: path.prior(3, 2, dtype=torch.long), TypeError,
     "dtype must be a floating-point"),
    ("paths.Path.timesteps", "steps 0", lambda: path.timesteps(0), ValueError, "steps must be >= 1"),
    ("paths.Path.timesteps", "t_min >= t_max", lambda: path.timesteps(5, t_min=0.5, t_max=0.4), ValueError,
     "t_min < t_max"),
    ("paths.Path.noise", "eps shape", lambda: path.noise(x, 0.5, torch.zeros(1, 2)), ValueError,
     "eps must have the shape of x0 (4, 2)"),
    ("paths.Path.noise", "x0 NaN", lambda: path.noise(torch.full((4, 2), nan), 0.5, x), ValueError,
     "x0 contains NaN"),
    ("paths.Path.target", "pred", lambda: path.target("noise", x, x, 0.5), ValueError, "pred must be one of"),
    ("paths.Path.target", "eps shape", lambda: path.target("eps", x, torch.zeros(4, 3), 0.5), ValueError,
     "eps must have the shape of x0"),
    ("paths.Path.convert", "src", lambda: path.convert(x, x, 0.5, "logits", "eps"), ValueError,
     "src must be one of"),
    ("paths.Path.convert", "value shape", lambda: path.convert(torch.zeros(4, 3), x, 0.5, "eps", "x0"), ValueError,
     "value must have the shape of x"),
    ("paths.Path.ode_drift", "score shape", lambda: path.ode_drift(x, 0.5, torch.zeros(2, 2)), ValueError,
     "score must have the shape of x"),
    ("paths.Path.reverse_sde", "score type", lambda: path.reverse_sde(x, 0.5, [[0.0, 0.0]]), TypeError,
     "score must be a torch.Tensor"),
    ("paths.Path.t_of_logsnr", "NaN", lambda: path.t_of_logsnr(torch.tensor([nan])), ValueError,
     "lam contains NaN"),
    ("paths.Path.t_of_logsnr", "string", lambda: paths.VP().t_of_logsnr("0"), TypeError, "lam must be a real"),
    ("paths.VE", "sigmas", lambda: paths.VE(1.0, 0.5), ValueError, "sigma_max must exceed sigma_min"),
    ("paths.VE", "sigma NaN", lambda: paths.VE(nan), ValueError, "sigma_min must be finite"),
    ("paths.VP", "beta", lambda: paths.VP(beta_min=-1.0), ValueError, "beta_min must be > 0"),
    # -- data ---------------------------------------------------------------------------------------------------
    ("data.GaussianMixture", "means rank", lambda: data.GaussianMixture([0.0, 1.0]), ValueError,
     "means must have shape (K, d)"),
    ("data.GaussianMixture", "means NaN", lambda: data.GaussianMixture([[nan, 0.0]]), ValueError,
     "means contains NaN"),
    ("data.GaussianMixture", "std", lambda: data.GaussianMixture([[0.0, 0.0]], -1.0), ValueError,
     "std must be a positive"),
    ("data.GaussianMixture", "weights NaN", lambda: data.GaussianMixture([[0.0], [1.0]], 1.0, [nan, 1.0]),
     ValueError, "weights must be non-negative"),
    ("data.GaussianMixture.restrict", "index", lambda: mix.restrict([5]), ValueError,
     "components must be indices in 0..2"),
    ("data.GaussianMixture.restrict", "empty", lambda: mix.restrict(torch.zeros(3, dtype=torch.bool)), ValueError,
     "selects no component"),
    ("data.GaussianMixture.restrict", "float", lambda: mix.restrict([0.5]), TypeError,
     "components must be a boolean mask or integer"),
    ("data.GaussianMixture.conditional", "label", lambda: mix.conditional(3), ValueError,
     "y must be class labels in 0..2"),
    ("data.GaussianMixture.sample", "label negative", lambda: mix.sample(4, -1), ValueError, "y must be class labels"),
    ("data.GaussianMixture.sample", "n 0", lambda: mix.sample(0), ValueError, "n must be >= 1"),
    ("data.GaussianMixture.sample", "dtype", lambda: mix.sample(4, dtype=torch.long), TypeError,
     "dtype must be a floating-point"),
    ("data.GaussianMixture.log_prob", "t without path", lambda: mix.log_prob(x, t=0.5), ValueError,
     "give both t and path"),
    ("data.GaussianMixture.log_prob", "x wrong dim", lambda: mix.log_prob(torch.zeros(4, 3)), ValueError,
     "x must have last dimension 2"),
    ("data.GaussianMixture.score", "x wrong rank", lambda: mix.score(torch.zeros(4), 0.5, path), ValueError,
     "x must have 2 dimensions"),
    ("data.GaussianMixture.score", "x wrong dim", lambda: mix.score(torch.zeros(4, 3), 0.5, path), ValueError,
     "x must have last dimension 2"),
    ("data.GaussianMixture.score", "x not a tensor", lambda: mix.score([[0.0, 0.0]], 0.5, path), TypeError,
     "x must be a torch.Tensor"),
    ("data.GaussianMixture.score", "x integer", lambda: mix.score(torch.zeros(4, 2, dtype=torch.long), 0.5, path),
     TypeError, "floating"),
    ("data.GaussianMixture.score", "x NaN", lambda: mix.score(torch.full((4, 2), nan), 0.5, path), ValueError,
     "NaN"),
    ("data.GaussianMixture.score", "x empty", lambda: mix.score(torch.zeros(0, 2), 0.5, path), ValueError,
     "empty batch"),
    ("data.GaussianMixture.score", "t > 1", lambda: mix.score(x, 1.5, path), ValueError, "t must lie in [0, 1]"),
    ("data.GaussianMixture.score", "t < 0", lambda: mix.score(x, torch.full((4,), -0.1), path), ValueError,
     "t must lie in [0, 1]"),
    ("data.GaussianMixture.score", "t NaN", lambda: mix.score(x, nan, path), ValueError, "t must be finite"),
    ("data.GaussianMixture.score", "t wrong shape", lambda: mix.score(x, torch.full((3,), 0.5), path), ValueError,
     "t must be a scalar or"),
    ("data.GaussianMixture.score", "label out of range", lambda: mix.score(x, 0.5, path, 3), ValueError,
     "y must be class labels in 0..2"),
    ("data.GaussianMixture.score", "label float", lambda: mix.score(x, 0.5, path, torch.zeros(4)), TypeError,
     "y must hold integer"),
    ("data.GaussianMixture.score", "labels wrong length",
     lambda: mix.score(x, 0.5, path, torch.zeros(3, dtype=torch.long)), ValueError,
     "y must be an int or have shape (4,)"),
    ("data.GaussianMixture.score", "path type", lambda: mix.score(x, 0.5, "linear"), TypeError,
     "path must be a cfglab.paths.Path"),
    ("data.GaussianMixture.posterior", "x empty", lambda: mix.posterior(torch.zeros(0, 2), 0.5, path), ValueError,
     "empty batch"),
    ("data.GaussianMixture.log_posterior", "t", lambda: mix.log_posterior(x, 2.0, path), ValueError,
     "t must lie in [0, 1]"),
    ("data.GaussianMixture.score_fn", "path", lambda: mix.score_fn(None), TypeError, "path must be a"),
    ("data.GaussianMixture.score_fn", "label", lambda: mix.score_fn(path, 5), ValueError, "y must be class labels"),
    ("data.GaussianMixture.mean", "label", lambda: mix.mean(3), ValueError, "y must be class labels"),
    ("data.GaussianMixture.covariance", "label type", lambda: mix.covariance("A"), TypeError,
     "y must be an int"),
    ("data.GaussianMixture.tempered", "T", lambda: mix.tempered(0.0), ValueError, "T must be > 0"),
    ("data.make", "name", lambda: data.make("nope"), ValueError, "name must be one of"),
    ("data.TensorData", "labels float", lambda: data.TensorData(x, torch.zeros(4)), TypeError,
     "y must be an integer tensor"),
    ("data.TensorData", "labels length", lambda: data.TensorData(x, torch.zeros(3, dtype=torch.long)), ValueError,
     "y must have shape (4,)"),
    ("data.TensorData", "label range", lambda: data.TensorData(x, torch.tensor([0, 1, 2, 3]), 2), ValueError,
     "y must be class labels in 0..1"),
    ("data.TensorData", "x NaN", lambda: data.TensorData(torch.full((2, 2), nan), torch.tensor([0, 1])), ValueError,
     "x contains NaN"),
    ("data.TensorData.sample", "n 0", lambda: td.sample(0), ValueError, "n must be >= 1"),
    ("data.TensorData.sample", "y", lambda: td.sample(3, 1), ValueError, "draws labelled pairs"),
    ("data.AttributeToy", "has shape", lambda: data.AttributeToy(mix, torch.ones(2, 2), ["a", "b"]), ValueError,
     "has must have shape (3, num_concepts)"),
    ("data.AttributeToy.sample", "n 0", lambda: toy.sample(0), ValueError, "n must be >= 1"),
    ("data.AttributeToy.concept", "name", lambda: toy.concept("purple"), ValueError, "unknown concept 'purple'"),
    ("data.AttributeToy.concept", "index", lambda: toy.concept(7), ValueError, "concept must be class labels"),
    ("data.AttributeToy.mask", "name", lambda: toy.mask(["purple"]), ValueError, "unknown concept"),
    ("data.AttributeToy.target", "nothing qualifies", lambda: toy.target(["red"], ["red"]), ValueError,
     "selects no component"),
    ("data.AttributeToy.probability", "x dim", lambda: toy.probability(torch.zeros(4, 3), "red"), ValueError,
     "x must have last dimension 2"),
    ("data.AttributeToy.probability", "path", lambda: toy.probability(x, "red", 0.5, "vp"), TypeError,
     "path must be a"),
    ("data.AttributeToy.near", "radius", lambda: toy.near(x, [0], 0.0), ValueError, "radius must be > 0"),
    ("data.AttributeToy.near", "components", lambda: toy.near(x, [9]), ValueError,
     "components must be indices in 0..5"),
    ("data.make_attributes", "layout", lambda: data.make_attributes("hex"), ValueError, "layout must be one of"),
    ("data.make_attributes", "std", lambda: data.make_attributes(std=-1.0), ValueError, "std must be > 0"),
    # -- models -------------------------------------------------------------------------------------------------
    ("models.TimeEmbedding", "width", lambda: models.TimeEmbedding(0), ValueError, "width must be >= 1"),
    ("models.TimeEmbedding.forward", "t rank", lambda: model.time(torch.zeros(4, 1)), ValueError,
     "t must have 1 dimensions"),
    ("models.MLP", "dim", lambda: models.MLP(0), ValueError, "dim must be >= 1"),
    ("models.MLP", "pred", lambda: models.MLP(2, 3, pred="noise"), ValueError, "pred must be one of"),
    ("models.MLP", "path", lambda: models.MLP(2, 3, path="linear"), TypeError, "path must be a cfglab.paths.Path"),
    ("models.MLP", "width", lambda: models.MLP(2, 3, width=0), ValueError, "width must be >= 1"),
    ("models.MLP", "seed", lambda: models.MLP(2, 3, seed=-1), ValueError, "seed must be >= 0"),
    ("models.MLP.forward", "label out of range", lambda: model(x, 0.5, 4), ValueError, "null label 3"),
    ("models.MLP.forward", "x wrong dim", lambda: model(torch.zeros(4, 3), 0.5), ValueError,
     "x must have last dimension 2"),
    ("models.MLP.forward", "dtype mismatch", lambda: model(x.double(), 0.5), TypeError, "dtype"),
    ("models.MLP.forward", "device mismatch", lambda: model(meta, 0.5), ValueError,
     "x is on meta but the model is on cpu"),
    ("models.MLP.forward", "t NaN", lambda: model(x, nan), ValueError, "t must be finite"),
    ("models.MLP.forward", "empty", lambda: model(torch.zeros(0, 2), 0.5), ValueError, "empty batch"),
    ("models.MLP.predict", "kind", lambda: model.predict(x, 0.5, kind="logits"), ValueError, "kind must be one of"),
    ("models.Classifier", "classes", lambda: models.Classifier(2, 1), ValueError, "num_classes must be >= 2"),
    ("models.Classifier.forward", "x integer", lambda: clf(torch.zeros(4, 2, dtype=torch.long), 0.5), TypeError,
     "x must be a floating-point tensor"),
    ("models.Classifier.log_prob_grad", "label", lambda: clf.log_prob_grad(x, 0.5, 5), ValueError,
     "y must be class labels in 0..2"),
    ("models.UNet", "size", lambda: models.UNet(7), ValueError, "size must be even"),
    ("models.UNet", "width", lambda: models.UNet(8, width=12), ValueError, "width must be a multiple of 8"),
    ("models.UNet.forward", "shape", lambda: unet(torch.zeros(4, 1, 6, 6), 0.5), ValueError,
     "x must have shape (n, 1, 8, 8)"),
    ("models.UNet.forward", "device", lambda: unet(torch.zeros(2, 1, 8, 8, device="meta"), 0.5), ValueError,
     "x is on meta but the model is on cpu"),
    ("models.UNet.predict", "kind", lambda: unet.predict(torch.zeros(2, 1, 8, 8), 0.5, kind="logit"), ValueError,
     "kind must be one of"),
    # -- train --------------------------------------------------------------------------------------------------
    ("train.TrainConfig", "steps 0", lambda: train.TrainConfig(steps=0), ValueError, "steps must be >= 1"),
    ("train.TrainConfig.lr_at", "step negative", lambda: train.TrainConfig().lr_at(-1), ValueError,
     "step must be >= 0"),
    ("train.TrainConfig", "lr", lambda: train.TrainConfig(lr=-1.0), ValueError, "lr must be > 0"),
    ("train.TrainConfig", "p_uncond", lambda: train.TrainConfig(p_uncond=2.0), ValueError,
     "p_uncond must be in [0, 1]"),
    ("train.TrainConfig", "batch_size float", lambda: train.TrainConfig(batch_size=2.5), TypeError,
     "batch_size must be an integer"),
    ("train.drop_labels", "p_uncond", lambda: train.drop_labels(torch.zeros(4, dtype=torch.long), 1.5, 3),
     ValueError, "p_uncond must be in [0, 1]"),
    ("train.drop_labels", "float labels", lambda: train.drop_labels(torch.zeros(4), 0.1, 3), TypeError,
     "y must be a 1-D integer tensor"),
    ("train.drop_labels", "null label", lambda: train.drop_labels(torch.zeros(4, dtype=torch.long), 0.1, -1),
     ValueError, "null_label must be >= 0"),
    ("train.sample_times", "n 0", lambda: train.sample_times(0, path), ValueError, "n must be >= 1"),
    ("train.sample_times", "path", lambda: train.sample_times(3, "linear"), TypeError, "path must be a"),
    ("train.denoising_loss", "x0 NaN", lambda: train.denoising_loss(model, torch.full((4, 2), nan)), ValueError,
     "x0 contains NaN"),
    ("train.denoising_loss", "not a denoiser", lambda: train.denoising_loss(torch.nn.Linear(2, 2), x), TypeError,
     "model must be a denoiser"),
    ("train.denoising_loss", "eps shape", lambda: train.denoising_loss(model, x, eps=torch.zeros(4, 3)), ValueError,
     "eps must have the shape of x0"),
    ("train.classifier_loss", "labels", lambda: train.classifier_loss(clf, x, torch.full((4,), 5)), ValueError,
     "y must be class labels in 0..2"),
    ("train.classifier_loss", "clf type", lambda: train.classifier_loss(model, x, torch.zeros(4, dtype=torch.long)),
     TypeError, "clf must be a cfglab.Classifier"),
    ("train.train_iter", "data", lambda: train.train_iter(model, [1, 2]), TypeError,
     "data must have a sample(n, generator=...) method"),
    ("train.train_iter", "model", lambda: train.train_iter(lambda x_: x_, mix), TypeError,
     "model must be a torch.nn.Module with parameters"),
    ("train.train_iter", "classes", lambda: train.train_iter(models.MLP(2, 2), mix), ValueError,
     "data has 3 classes but the model has num_classes=2"),
    ("train.fit", "unknown option", lambda: train.fit(model, mix, stpes=5), TypeError,
     "unknown training option(s) ['stpes']"),
    ("train.fit", "config type", lambda: train.fit(model, mix, {"steps": 5}), TypeError,
     "config must be a cfglab.TrainConfig"),
    ("train.fit", "dimension", lambda: train.fit(models.MLP(3, 3), mix, steps=2), ValueError,
     "data has dimension 2 but the model has dim=3"),
    # -- guidance -----------------------------------------------------------------------------------------------
    ("guidance.scale_from_paper", "NaN", lambda: guidance.scale_from_paper(nan), ValueError, "w must be finite"),
    ("guidance.scale_to_paper", "string", lambda: guidance.scale_to_paper("2"), TypeError,
     "scale must be a real number"),
    ("guidance.cfg", "scale inf", lambda: guidance.cfg(x, x, math.inf), ValueError, "scale must be finite"),
    ("guidance.cfg", "scale string", lambda: guidance.cfg(x, x, "3"), TypeError, "scale must be a real number"),
    ("guidance.cfg", "shapes", lambda: guidance.cfg(x, torch.zeros(3, 2), 2.0), ValueError,
     "cond and uncond must have one shape"),
    ("guidance.cfg", "devices", lambda: guidance.cfg(x, meta, 2.0), ValueError, "arguments must be on one device"),
    ("guidance.cfg", "dtypes", lambda: guidance.cfg(x, x.double(), 2.0), TypeError,
     "arguments must share one dtype"),
    ("guidance.classifier_guidance", "shapes", lambda: guidance.classifier_guidance(x, torch.zeros(4, 1), 1.0),
     ValueError, "score and grad_log_p must have one shape"),
    ("guidance.combine", "function", lambda: guidance.combine(x, score, 2.0), TypeError,
     "cond_fn must be a function"),
    ("guidance.guided", "label out of range", lambda: guidance.guided(model, 5, 2.0), ValueError,
     "y must be class labels"),
    ("guidance.guided", "tensor label out of range", lambda: guidance.guided(model, torch.full((4,), 5), 2.0)(x, t4),
     ValueError, "y must be class labels"),
    ("guidance.guided", "scale NaN", lambda: guidance.guided(model, 0, nan), ValueError, "scale must be finite"),
    ("guidance.guided", "not a model", lambda: guidance.guided(mix, 0, 2.0), TypeError, "model must be a denoiser"),
    ("guidance.guided", "kind", lambda: guidance.guided(model, 0, 2.0, kind="logits"), ValueError,
     "kind must be one of"),
    ("guidance.guided", "device", lambda: guidance.guided(model, 0, 2.0)(meta, t4), ValueError,
     "t is on device cpu but x is on meta"),
    ("guidance.log_prob_grad", "logits shape", lambda: guidance.log_prob_grad(lambda x_, t_: x_[:, 0], x, 0.5, 0),
     ValueError, "classifier must return logits of shape (4, K)"),
    ("guidance.log_prob_grad", "x NaN", lambda: guidance.log_prob_grad(clf, torch.full((4, 2), nan), 0.5, 0),
     ValueError, "x contains NaN"),
    ("guidance.classifier_guided", "function", lambda: guidance.classifier_guided(None, clf, 0, 2.0), TypeError,
     "score_fn must be a function"),
    ("guidance.rescale", "phi", lambda: guidance.rescale(x, x, -1.0), ValueError, "guidance_rescale must be >= 0"),
    ("guidance.rescale", "shapes", lambda: guidance.rescale(x, torch.zeros(4, 3), 0.5), ValueError,
     "predictions must have one shape"),
    ("guidance.dynamic_threshold", "percentile", lambda: guidance.dynamic_threshold(x, 0.0), ValueError,
     "percentile must lie in (0, 1]"),
    ("guidance.dynamic_threshold", "NaN", lambda: guidance.dynamic_threshold(torch.full((2, 2), nan)), ValueError,
     "x0 contains NaN"),
    ("guidance.apg", "running shape", lambda: guidance.apg(x, x, 2.0, running=torch.zeros(3, 2)), ValueError,
     "predictions must have one shape"),
    ("guidance.apg", "eta", lambda: guidance.apg(x, x, 2.0, eta=nan), ValueError, "eta must be finite"),
    ("guidance.parallel_orthogonal", "shapes", lambda: guidance.parallel_orthogonal(x, torch.zeros(2, 2)),
     ValueError, "predictions must have one shape"),
    ("guidance.cfg_zero_star_scale", "eps", lambda: guidance.cfg_zero_star_scale(x, x, -1.0), ValueError,
     "eps must be >= 0"),
    ("guidance.cfg_zero_star", "scale", lambda: guidance.cfg_zero_star(x, x, math.inf), ValueError,
     "guidance_scale must be finite"),
    ("guidance.scale_schedule", "kind", lambda: guidance.scale_schedule("exp", 0.5, 2.0), ValueError,
     "kind must be one of"),
    ("guidance.scale_schedule", "t", lambda: guidance.scale_schedule("linear", torch.tensor([1.5]), 2.0), ValueError,
     "t must be finite and lie in [0, 1]"),
    ("guidance.in_interval", "start > stop", lambda: guidance.in_interval(0.5, 0.8, 0.2), ValueError,
     "start must be <= stop"),
    ("guidance.in_interval", "t NaN", lambda: guidance.in_interval(torch.tensor([nan]), 0.2, 0.8), ValueError,
     "t must be finite"),
    ("guidance.interval_scale", "scale", lambda: guidance.interval_scale(0.5, nan, 0.2, 0.8), ValueError,
     "guidance_scale must be finite"),
    ("guidance.predictions", "not a model", lambda: guidance.predictions(score, 0), TypeError,
     "model must be a denoiser"),
    ("guidance.predictions", "null as y", lambda: guidance.predictions(model, 3), ValueError,
     "y must be class labels in 0..2"),
    ("guidance.guided_rule", "rule", lambda: guidance.guided_rule(guidance.predictions(model, 0), 2.0, path),
     TypeError, "rule must be a function"),
    ("guidance.guided_rule", "path", lambda: guidance.guided_rule(guidance.predictions(model, 0), _rule, "x0"),
     TypeError, "path must be a"),
    ("guidance.guided_rule", "space", lambda: guidance.guided_rule(guidance.predictions(model, 0), _rule, path,
                                                                   space="logits"), ValueError,
     "space must be one of"),
    ("guidance.autoguided", "guide", lambda: guidance.autoguided(model, score, 0, 2.0), TypeError,
     "guide must be a denoiser"),
    ("guidance.autoguided", "label", lambda: guidance.autoguided(model, model, 7, 2.0), ValueError,
     "y must be class labels"),
    ("guidance.compose", "weights", lambda: guidance.compose(x, [x, x], [1.0]), ValueError,
     "need one weight per condition"),
    ("guidance.compose", "shapes", lambda: guidance.compose(x, [torch.zeros(4, 3)], [1.0]), ValueError,
     "predictions must have one shape"),
    ("guidance.perp_neg", "neg_scale", lambda: guidance.perp_neg(x, x, x, 2.0, nan), ValueError,
     "neg_scale must be finite"),
    ("guidance.perp_neg", "shapes", lambda: guidance.perp_neg(x, x, torch.zeros(4, 1), 2.0), ValueError,
     "predictions must have one shape"),
    ("guidance.label_predictions", "empty", lambda: guidance.label_predictions(model, []), ValueError,
     "labels must name at least one label"),
    ("guidance.label_predictions", "label", lambda: guidance.label_predictions(model, [7]), ValueError,
     "labels[0] must be class labels"),
    # -- claims -------------------------------------------------------------------------------------------------
    ("claims.check", "op", lambda: claims.check("c", 1.0, "=>", 2.0), ValueError, "op must be one of"),
    ("claims.check", "claim", lambda: claims.check("", 1.0, "<", 2.0), TypeError, "claim must be a non-empty"),
    ("claims.check", "value type", lambda: claims.check("c", "1", "<", 2.0), TypeError, "c must be a number"),
    ("claims.check", "empty value", lambda: claims.check("c", torch.zeros(0), "<", 2.0), ValueError,
     "c is an empty tensor"),
    ("claims.check", "nan value", lambda: claims.check("c", nan, "<", 2.0), claims.ClaimError, "c is not finite"),
    ("claims.check", "nan bound", lambda: claims.check("c", 1.0, "<", nan), TypeError, "bound must be a finite"),
    ("claims.check", "no tol", lambda: claims.check("c", 1.0, "≈", 1.0), TypeError, "op '≈' needs tol="),
    ("claims.check", "tol on <", lambda: claims.check("c", 1.0, "<", 2.0, tol=0.1), TypeError,
     "tol applies to op '≈' only"),
    ("claims.check", "range", lambda: claims.check("c", 1.0, "in", 2.0), TypeError, "bound must be a pair"),
    ("claims.check", "reversed range", lambda: claims.check("c", 1.0, "in", (2.0, 1.0)), ValueError,
     "lo <= hi"),
    # -- digits: the judge of the image chapters -----------------------------------------------------------------
    ("digits.Judge", "per_class", lambda: digits.Judge(per_class=1, classifier=dclf), ValueError,
     "per_class must be >= 2"),
    ("digits.Judge", "too many", lambda: digits.Judge(per_class=100, sets=4, classifier=dclf), ValueError,
     "sets * per_class must be at most"),
    ("digits.Judge.__call__", "count", lambda: _judge()(torch.zeros(3, 1, 8, 8)), ValueError,
     "x must hold 20 images in the order of Judge.labels"),
    ("digits.Judge.__call__", "shape", lambda: _judge()(torch.zeros(20, 64)), ValueError, "x must have 4 dimensions"),
    # -- compare ------------------------------------------------------------------------------------------------
    ("compare.interval", "one value", lambda: compare.interval([1.0]), ValueError, "at least 2 values"),
    ("compare.interval", "nan", lambda: compare.interval([1.0, nan]), ValueError, "values must be finite"),
    ("compare.baseline_at", "empty", lambda: compare.baseline_at({}, 0, "x", "y", 1.0), TypeError,
     "baseline must be a non-empty mapping"),
    ("compare.baseline_at", "ragged", lambda: compare.baseline_at({1: [{}], 2: [{}, {}]}, 0, "x", "y", 1.0),
     ValueError, "same number"),
    ("compare.versus_baseline", "not a curve", lambda: compare.versus_baseline([1], {1: [{}]}, "x", "y"),
     TypeError, "method must be a non-empty mapping"),
    ("data.GaussianMixture.shift", "wrong shape", lambda: mix.shift([1.0, 2.0, 3.0]), ValueError,
     "offset must be a finite vector of shape (2,)"),
    ("data.GaussianMixture.shift", "nan", lambda: mix.shift([1.0, nan]), ValueError, "offset must be a finite"),
    # -- samplers -----------------------------------------------------------------------------------------------
    ("samplers.ode", "steps 0", lambda: samplers.ode(score, x, path, 0), ValueError, "steps must be >= 1"),
    ("samplers.ode", "steps float", lambda: samplers.ode(score, x, path, 2.5), TypeError,
     "steps must be an integer"),
    ("samplers.ode", "t_max 1 on Linear", lambda: samplers.ode(score, x, path, 3, t_max=1.0, variable="sigma"),
     ValueError, "needs alpha > 0 on the whole grid"),
    ("samplers.ode", "t_max 1, score in t", lambda: samplers.ode(score, x, path, 3, t_max=1.0), ValueError,
     "converts the score prediction to a velocity, which needs alpha > 0"),
    ("samplers.ode", "variable", lambda: samplers.ode(score, x, path, 3, variable="lambda"), ValueError,
     "variable must be one of"),
    ("samplers.ode", "method", lambda: samplers.ode(score, x, path, 3, method="rk4"), ValueError,
     "method must be one of"),
    ("samplers.ode", "pred", lambda: samplers.ode(score, x, path, 3, pred="noise"), ValueError,
     "pred must be one of"),
    ("samplers.ode", "spacing", lambda: samplers.ode(score, x, path, 3, spacing="cosine"), ValueError,
     "spacing must be one of"),
    ("samplers.ode", "path type", lambda: samplers.ode(score, x, "linear", 3), TypeError,
     "path must be a cfglab.paths.Path"),
    ("samplers.ode", "t_min >= t_max", lambda: samplers.ode(score, x, path, 3, t_min=0.5, t_max=0.4), ValueError,
     "t_min < t_max"),
    ("samplers.ode", "fn wrong shape", lambda: samplers.ode(lambda x_, t_: x_[:, :1], x, path, 3), ValueError,
     "fn must return a tensor"),
    ("samplers.ode", "fn device", lambda: samplers.ode(lambda x_, t_: x_.to("meta"), x, path, 3), ValueError,
     "fn returned a tensor on meta for x on cpu"),
    ("samplers.ode", "model on another device", lambda: samplers.ode(guidance.guided(model, 0, 2.0), meta, path, 3),
     ValueError, "x is on meta but the model is on cpu"),
    ("samplers.sde", "steps negative", lambda: samplers.sde(score, x, path, -3), ValueError, "steps must be >= 1"),
    ("samplers.sde", "x NaN", lambda: samplers.sde(score, torch.full((4, 2), nan), path, 3), ValueError,
     "x contains NaN"),
    ("samplers.ddim", "eta", lambda: samplers.ddim(score, x, path, 3, eta=-1.0), ValueError, "eta must be >= 0"),
    ("samplers.ddpm", "empty", lambda: samplers.ddpm(score, torch.zeros(0, 2), path, 3), ValueError, "empty batch"),
    ("samplers.langevin", "step", lambda: samplers.langevin(lambda x_: -x_, x, 0.0, 3), ValueError,
     "step_size must be > 0"),
    ("samplers.langevin", "steps", lambda: samplers.langevin(lambda x_: -x_, x, 0.1, 0), ValueError,
     "steps must be >= 1"),
    ("samplers.langevin", "fn", lambda: samplers.langevin(None, x, 0.1, 3), TypeError, "fn must be a function"),
    ("samplers.mala", "log_prob shape", lambda: samplers.mala(lambda x_: x_, x, 0.1, 3), ValueError,
     "log_prob must return one value per row of x"),
    ("samplers.mala", "step", lambda: samplers.mala(mix.log_prob, x, -0.1, 3), ValueError, "step_size must be > 0"),
    ("samplers.annealed_langevin", "levels", lambda: samplers.annealed_langevin(score, x, path, 1, 3, 0.01),
     ValueError, "levels must be >= 2"),
    ("samplers.ddim_cfgpp", "scale", lambda: samplers.ddim_cfgpp(guidance.predictions(model, 0), x, path, 3,
                                                                 guidance_scale=nan), ValueError,
     "guidance_scale must be finite"),
    ("samplers.ddim_cfgpp", "pair", lambda: samplers.ddim_cfgpp(model, x, path, 3, guidance_scale="a"), TypeError,
     "guidance_scale must be a real number"),
    # -- metrics ------------------------------------------------------------------------------------------------
    ("metrics.mmd", "dims", lambda: metrics.mmd(torch.zeros(5, 2), torch.zeros(5, 3)), ValueError,
     "one dimension per sample"),
    ("metrics.mmd", "bandwidths", lambda: metrics.mmd(x, x, []), ValueError, "bandwidths must name"),
    ("metrics.mmd", "one sample", lambda: metrics.mmd(x[:1], x), ValueError, "at least 2 samples"),
    ("metrics.mmd", "devices", lambda: metrics.mmd(x, meta), ValueError, "arguments must be on one device"),
    ("metrics.sliced_wasserstein", "NaN", lambda: metrics.sliced_wasserstein(torch.full((5, 2), nan), x),
     ValueError, "NaN"),
    ("metrics.sliced_wasserstein", "projections", lambda: metrics.sliced_wasserstein(x, x, 0), ValueError,
     "projections must be >= 1"),
    ("metrics.adherence", "labels", lambda: metrics.adherence(x, 7, mix), ValueError, "y must be class labels"),
    ("metrics.adherence", "classifier output", lambda: metrics.adherence(x, 0, lambda x_: x_[:, 0]), ValueError,
     "classifier must return scores of shape (4, K)"),
    ("metrics.class_probability", "mixture", lambda: metrics.class_probability(x, 0, model), TypeError,
     "mixture must be a cfglab.GaussianMixture"),
    ("metrics.class_probability", "labels", lambda: metrics.class_probability(x, 3, mix), ValueError,
     "y must be class labels in 0..2"),
    ("metrics.diversity", "one sample", lambda: metrics.diversity(x[:1]), ValueError, "at least 2 samples"),
    ("metrics.log_likelihood", "mixture", lambda: metrics.log_likelihood(x, "moons"), TypeError,
     "mixture must be a cfglab.GaussianMixture"),
    ("metrics.log_likelihood", "x", lambda: metrics.log_likelihood(torch.zeros(4, 3), mix), ValueError,
     "x must have last dimension 2"),
    ("metrics.noise_floor", "n", lambda: metrics.noise_floor(mix, 0), ValueError, "n must be >= 1"),
    ("metrics.noise_floor", "repeats", lambda: metrics.noise_floor(mix, 10, repeats=0), ValueError,
     "repeats must be >= 1"),
    ("metrics.noise_floor", "metric", lambda: metrics.noise_floor(mix, 10, metric="sw"), TypeError,
     "metric must be a function"),
    ("metrics.frechet_distance", "one sample", lambda: metrics.frechet_distance(x[:1], x), ValueError,
     "at least 2 samples"),
    ("metrics.mode_weight_error", "mixture", lambda: metrics.mode_weight_error(x, "moons"), TypeError,
     "mixture must be a cfglab.GaussianMixture"),
    ("metrics.mode_weight_error", "labels", lambda: metrics.mode_weight_error(x, mix, [0, 1]), TypeError,
     "y must be one class label"),
    ("metrics.mode_spread", "dims", lambda: metrics.mode_spread(torch.zeros(4, 3), mix), ValueError,
     "x must have 2 dimensions per sample"),
    ("metrics.mode_spread", "label", lambda: metrics.mode_spread(x, mix, 5), ValueError, "y must be class labels"),
    # -- plot ---------------------------------------------------------------------------------------------------
    ("plot.scatter", "ax", lambda: plot.scatter(None, x), TypeError, "ax must be a matplotlib Axes"),
    ("plot.scatter", "x dim", lambda: plot.scatter(ax, torch.zeros(4, 3)), ValueError,
     "x must have 2 dimensions and last dimension 2"),
    ("plot.scatter", "labels", lambda: plot.scatter(ax, x, torch.full((4,), 3), names=["a", "b", "c"]), ValueError,
     "y must be class labels in 0..2"),
    ("plot.grid", "n", lambda: plot.grid(3.0, 1), ValueError, "n must be >= 2"),
    ("plot.grid", "lim", lambda: plot.grid(-1.0), ValueError, "lim must be > 0"),
    ("plot.density", "output", lambda: plot.density(ax, lambda p: p, n=5), ValueError,
     "log_prob must return one value per point"),
    ("plot.vector_field", "output", lambda: plot.vector_field(ax, lambda p: p[:, 0], n=5), ValueError,
     "fn must return one 2D vector per point"),
    ("plot.trajectories", "rank", lambda: plot.trajectories(ax, x), ValueError, "traj must have 3 dimensions"),
    ("plot.trajectories", "count", lambda: plot.trajectories(ax, x[None], count=0), ValueError,
     "count must be >= 1"),
    # -- digits -------------------------------------------------------------------------------------------------
    ("digits.load", "split", lambda: digits.load("val"), ValueError, "split must be one of"),
    ("digits.load", "fraction", lambda: digits.load(test_fraction=1.5), ValueError,
     "test_fraction must lie in (0, 1)"),
    ("digits.dataset", "split", lambda: digits.dataset("val"), ValueError, "split must be one of"),
    ("digits.DigitClassifier", "hidden", lambda: digits.DigitClassifier(hidden=0), ValueError,
     "hidden must be >= 1"),
    ("digits.DigitClassifier.features", "pixels", lambda: dclf.features(torch.zeros(4, 63)), ValueError,
     "x must hold 64 pixels per image"),
    ("digits.DigitClassifier.forward", "NaN", lambda: dclf(torch.full((2, 64), nan)), ValueError, "x contains NaN"),
    ("digits.train_classifier", "steps", lambda: digits.train_classifier(0), ValueError, "steps must be >= 1"),
    ("digits.train_classifier", "lr", lambda: digits.train_classifier(5, lr=0.0), ValueError, "lr must be > 0"),
    ("digits.inpaint", "mask values", lambda: digits.inpaint(score, x, torch.full((4, 2), 2.0), path, 3), ValueError,
     "mask must hold only 0"),
    ("digits.inpaint", "mask shape", lambda: digits.inpaint(score, x, torch.ones(3, 2), path, 3), ValueError,
     "mask must broadcast against x_known (4, 2)"),
    ("digits.inpaint", "fn", lambda: digits.inpaint("model", x, torch.ones(4, 2), path, 3), TypeError,
     "fn must be a function"),
    # -- text ---------------------------------------------------------------------------------------------------
    ("text.MarkovText", "init rank", lambda: text.MarkovText([0.5, 0.5], torch.ones(1, 2, 2) / 2, alphabet="ab"),
     ValueError, "init must have shape (K, V)"),
    ("text.MarkovText", "trans shape", lambda: text.MarkovText([[0.5, 0.5]], torch.ones(1, 2, 3) / 3, alphabet="ab"),
     ValueError, "trans must have shape (1, 2, 2)"),
    ("text.MarkovText", "negative", lambda: text.MarkovText([[1.5, -0.5]], torch.ones(1, 2, 2) / 2, alphabet="ab"),
     ValueError, "non-negative probabilities"),
    ("text.MarkovText.decode", "token range", lambda: src.decode(torch.full((1, 3), 7)), ValueError,
     "x must hold token ids in 0..3"),
    ("text.MarkovText.sample", "n", lambda: src.sample(0), ValueError, "n must be >= 1"),
    ("text.MarkovText.sample", "label", lambda: src.sample(3, 5), ValueError, "y must be class labels in 0..2"),
    ("text.MarkovText.class_log_prob", "float tokens", lambda: src.class_log_prob(torch.zeros(2, 3)), TypeError,
     "x must hold integer token ids"),
    ("text.MarkovText.log_prob", "label", lambda: src.log_prob(tok, 5), ValueError, "y must be class labels"),
    ("text.MarkovText.posterior", "rank", lambda: src.posterior(torch.zeros(3, dtype=torch.long)), ValueError,
     "x must have shape (n, L)"),
    ("text.MarkovText.next_log_prob", "tokens", lambda: src.next_log_prob(torch.full((2, 2), 9)), ValueError,
     "prefix must hold token ids in 0..3"),
    ("text.MarkovText.all_sequences", "length", lambda: src.all_sequences(-1), ValueError, "length must be >= 0"),
    ("text.make_text", "name", lambda: text.make_text("poems"), ValueError, "unknown text source 'poems'"),
    ("text.TextModel", "vocab", lambda: text.TextModel(0, 3), ValueError, "vocab must be >= 1"),
    ("text.TextModel.forward", "float inputs", lambda: lm(torch.zeros(2, 3)), TypeError,
     "inputs must hold integer token ids"),
    ("text.TextModel.forward", "label", lambda: lm(tok, 9), ValueError, "null label 3"),
    ("text.TextModel.log_probs", "tokens", lambda: lm.log_probs(torch.full((2, 3), 4)), ValueError,
     "x must hold token ids in 0..3"),
    ("text.text_loss", "model", lambda: text.text_loss(model, tok), TypeError, "model must be a cfglab.TextModel"),
    ("text.fit_text", "source", lambda: text.fit_text(lm, mix), TypeError, "source must be a cfglab.MarkovText"),
    ("text.fit_text", "option", lambda: text.fit_text(lm, src, setps=3), TypeError, "unknown training option"),
    ("text.fit_text", "vocab", lambda: text.fit_text(text.TextModel(5, 3), src), ValueError,
     "model has vocab=5, num_classes=3 but source has 4 letters"),
    ("text.guided_log_probs", "scale", lambda: text.guided_log_probs(x, x, nan), ValueError, "scale must be finite"),
    ("text.guided_log_probs", "shapes", lambda: text.guided_log_probs(x, torch.zeros(4, 3), 2.0), ValueError,
     "cond and uncond must have one shape"),
    ("text.sample_token", "u length", lambda: text.sample_token(x, torch.zeros(3)), ValueError,
     "u must hold 4 uniforms in [0, 1]"),
    ("text.sample", "length", lambda: text.sample(lm, 0, 4, 0), ValueError, "length must be >= 1"),
    ("text.sample", "label", lambda: text.sample(lm, 5, 4, 3), ValueError, "y must be class labels in 0..2"),
    ("text.sample", "model", lambda: text.sample(model, 0, 4, 3), TypeError, "model must be a cfglab.TextModel"),
    ("text.exact_guided_law", "scale", lambda: text.exact_guided_law(src, 0, nan, 3), ValueError,
     "scale must be finite"),
    ("text.exact_guided_law", "label", lambda: text.exact_guided_law(src, 5, 2.0, 3), ValueError,
     "y must be class labels"),
    ("text.tilted_sequence_law", "scale", lambda: text.tilted_sequence_law(src, 0, nan, 3), ValueError,
     "scale must be finite"),
    ("text.MarkovText.encode", "letter", lambda: src.encode("abz"), ValueError, "may only use the letters"),
    ("text.MarkovText.encode", "lengths", lambda: src.encode(["ab", "abc"]), ValueError, "strings of one length"),
    ("text.TextModel.next_log_prob", "tokens", lambda: lm.next_log_prob(torch.full((2, 2), 7)), ValueError,
     "prefix must hold token ids in 0..3"),
    ("text.sample_prompted", "prompt type", lambda: text.sample_prompted(src.next_log_prob, "abc", 4, 3), TypeError,
     "prompt must be an integer tensor"),
    ("text.sample_prompted", "prompt rows", lambda: text.sample_prompted(src.next_log_prob, tok, 5, 3), ValueError,
     "prompt must have shape (P,), (1, P) or (5, P)"),
    ("text.sample_prompted", "function", lambda: text.sample_prompted(src, tok[:1], 4, 3), TypeError,
     "next_log_prob must be a function"),
    ("text.exact_prompted_law", "scale", lambda: text.exact_prompted_law(src, tok[:1], nan, 3), ValueError,
     "scale must be finite"),
    ("text.exact_prompted_law", "prompt tokens", lambda: text.exact_prompted_law(src, torch.tensor([9]), 2.0, 3),
     ValueError, "prompt must hold token ids in 0..3"),
    # -- cache --------------------------------------------------------------------------------------------------
    ("cache.key", "description", lambda: cache.key("mlp"), TypeError, "description must be a dict"),
    ("install.require", "bound", lambda: cfglab.install.require("diffusers<0.35"), ValueError,
     "requirement must be 'name' or 'name>=version'"),
    ("install.require", "type", lambda: cfglab.install.require(0.35), TypeError, "requirement must be a string"),
    ("cache.load", "key", lambda: cache.load("../../etc/passwd"), ValueError, "k must be a hexadecimal cache key"),
    ("cache.save", "tensors", lambda: cache.save("abc", [torch.zeros(2)]), TypeError,
     "tensors must be a dict from names to tensors"),
    ("cache.restore", "module", lambda: cache.restore({"w": torch.zeros(2)}, "abc"), TypeError,
     "module must be a torch.nn.Module"),
    ("cache.restore", "key", lambda: cache.restore(model, "k/../x"), ValueError, "k must be a hexadecimal"),
    # -- guidance on images, chapter 18 (guidance/images.py) --------------------------------------------------------
    ("guidance.to_v", "src", lambda: guidance.to_v(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8), 0.5, path,
                                                   "logits"), ValueError, "src must be one of"),
    ("guidance.to_v", "path", lambda: guidance.to_v(x, x, 0.5, "linear", "x0"), TypeError, "path must be a"),
    ("guidance.from_v", "dst", lambda: guidance.from_v(x, x, 0.5, path, "noise"), ValueError, "dst must be one of"),
    ("guidance.from_v", "v", lambda: guidance.from_v([0.0], x, 0.5, path, "x0"), TypeError,
     "v must be a torch.Tensor"),
    ("guidance.rule_in_v", "rule", lambda: guidance.rule_in_v(None, path), TypeError, "rule must be a function"),
    ("guidance.tangential_cfg", "scale", lambda: guidance.tangential_cfg(x, x, nan), ValueError,
     "guidance_scale must be finite"),
    ("guidance.tangential_cfg", "shapes", lambda: guidance.tangential_cfg(x, torch.zeros(3, 2), 2.0), ValueError,
     "predictions must have one shape"),
    ("guidance.mambo_scale", "alpha", lambda: guidance.mambo_scale(x, x, 2.0, -1.0), ValueError,
     "alpha must be >= 0"),
    ("guidance.mambo_guidance", "shapes", lambda: guidance.mambo_guidance(x, torch.zeros(4, 3), 2.0), ValueError,
     "predictions must have one shape"),
    ("guidance.pyramid_down", "odd size", lambda: guidance.pyramid_down(torch.zeros(2, 1, 7, 7)), ValueError,
     "x must have an even height and width"),
    ("guidance.pyramid_down", "not an image", lambda: guidance.pyramid_down(x), ValueError,
     "x must have 4 dimensions"),
    ("guidance.pyramid_up", "too small", lambda: guidance.pyramid_up(torch.zeros(2, 1, 1, 1)), ValueError,
     "x must be at least 2x2"),
    ("guidance.laplacian_pyramid", "levels", lambda: guidance.laplacian_pyramid(torch.zeros(2, 1, 8, 8), 4),
     ValueError, "levels=4 needs a height and width divisible by 8"),
    ("guidance.from_laplacian_pyramid", "empty", lambda: guidance.from_laplacian_pyramid([]), ValueError,
     "pyramid must hold at least one level"),
    ("guidance.from_laplacian_pyramid", "shapes", lambda: guidance.from_laplacian_pyramid(
        [torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 3, 3)]), ValueError, "pyramid[0] must have shape"),
    ("guidance.frequency_decoupled", "no scales", lambda: guidance.frequency_decoupled(
        torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8), []), ValueError, "guidance_scales must name one scale"),
    ("guidance.frequency_decoupled", "weights", lambda: guidance.frequency_decoupled(
        torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8), [2.0, 1.5], [0.5]), ValueError,
     "parallel_weights must have one weight per level"),
    ("guidance.translated", "pair", lambda: guidance.translated(None, 1.0, path), TypeError,
     "pair must be a function"),
    ("guidance.translated", "offset", lambda: guidance.translated(lambda x_, t_: (x_, x_), "1", path), TypeError,
     "offset must be a number or a torch.Tensor"),
    # -- several conditions (chapter 15) and guidance without a null label (chapter 16) ------------------------------
    ("models.MultiMLP", "num_classes", lambda: models.MultiMLP(2, 3), TypeError,
     "num_classes must be a non-empty sequence"),
    ("models.MultiMLP.forward", "label",
     lambda: models.MultiMLP(2, (3, 2), width=8, depth=1)(x, 0.5, [4, 0]),
     ValueError, "labels[0] must be class labels in 0..2 or the null label 3"),
    ("models.MultiMLP.label_columns", "count",
     lambda: models.MultiMLP(2, (3, 2), width=8, depth=1).label_columns([1], 4),
     ValueError, "a sequence of 2 labels"),
    ("models.MultiMLP.predict", "kind",
     lambda: models.MultiMLP(2, (3, 2), width=8, depth=1).predict(x, 0.5, kind="noise"),
     ValueError, "kind must be one of"),
    ("train_multi.MultiLabelData", "labels shape",
     lambda: importlib.import_module("cfglab.train_multi").MultiLabelData(mix, torch.zeros(2, 2)),
     ValueError, "labels must be integers of shape (3, m)"),
    ("train_multi.MultiLabelData.mask", "length",
     lambda: importlib.import_module("cfglab.train_multi").MultiLabelData(mix, torch.tensor([[0], [1], [1]])).mask(
         [None, 1]),
     ValueError, "labels must be a sequence of 1 entries"),
    ("train_multi.MultiLabelData.law", "label",
     lambda: importlib.import_module("cfglab.train_multi").MultiLabelData.from_attributes(toy).law([3, None]),
     ValueError, "labels[0] must be class labels in 0..2"),
    ("train_multi.MultiLabelData.sample", "y",
     lambda: importlib.import_module("cfglab.train_multi").MultiLabelData.from_attributes(toy).sample(4, 0),
     ValueError, "y must be None"),
    ("train_multi.drop_each", "p_drop",
     lambda: importlib.import_module("cfglab.train_multi").drop_each(torch.zeros(4, 2, dtype=torch.long), (0.1, 1.5),
                                                                    (3, 2)),
     ValueError, "p_drop[1] must be in [0, 1]"),
    ("train_multi.train_multi_iter", "model",
     lambda: importlib.import_module("cfglab.train_multi").train_multi_iter(model, toy),
     TypeError, "model must be a cfglab.models.MultiMLP"),
    ("train_multi.fit_multi", "data",
     lambda: importlib.import_module("cfglab.train_multi").fit_multi(models.MultiMLP(2, (3, 2), width=8, depth=1), mix,
                                                                    steps=2),
     TypeError, "data must be a cfglab.train_multi.MultiLabelData"),
    ("guidance.nested", "shapes", lambda: guidance.nested(x, x, torch.zeros(4, 3), 1.5, 7.5), ValueError,
     "predictions must have one shape"),
    ("guidance.nested", "scale", lambda: guidance.nested(x, x, x, nan, 7.5), ValueError,
     "scale_first must be finite"),
    ("guidance.instruct_pix2pix", "scale", lambda: guidance.instruct_pix2pix(x, x, x, "7.5", 1.5), TypeError,
     "scale_second must be a real number"),
    ("guidance.dual_cfg", "style", lambda: guidance.dual_cfg(x, x, x, 8.0, 8.0, style="deep"), ValueError,
     "style must be one of ('regular', 'nested')"),
    ("guidance.interaction", "shapes", lambda: guidance.interaction(x, x, x, torch.zeros(3, 2)), ValueError,
     "predictions must have one shape"),
    ("guidance.multi_predictions", "model", lambda: guidance.multi_predictions(model, [(None, None)]), TypeError,
     "model must be a cfglab.models.MultiMLP"),
    ("guidance.icg", "scale", lambda: guidance.icg(x, x, nan), ValueError, "scale must be finite"),
    ("guidance.tsg", "shapes", lambda: guidance.tsg(x, torch.zeros(3, 2), 2.0), ValueError,
     "cond and uncond must have one shape"),
    ("guidance.expected_icg", "weights", lambda: guidance.expected_icg([x, x], [1.0, -1.0]), ValueError,
     "weights must be 2 non-negative numbers"),
    ("guidance.icg_negative_scale", "num_classes", lambda: guidance.icg_negative_scale(3.0, 1), ValueError,
     "num_classes must be >= 2"),
    ("guidance.random_conditions", "n", lambda: guidance.random_conditions(0, 3), ValueError, "n must be >= 1"),
    ("guidance.icg_guided", "label", lambda: guidance.icg_guided(model, 3, 2.0), ValueError,
     "y must be class labels in 0..2"),
    ("guidance.time_perturbed", "z shape", lambda: guidance.time_perturbed(model, x, 0.5, 0, 1.0, torch.zeros(4, 3)),
     ValueError, "z must have shape (4, 16)"),
    ("guidance.tsg_guided", "model", lambda: guidance.tsg_guided(unet, 0, 2.0), TypeError,
     "model must be a cfglab.MLP"),
    # -- the discrete-time path, DPM-Solver++(2M), the exact denoiser, the guidance interval (chapter 19) ---------
    ("paths.Discrete", "schedule", lambda: paths.Discrete("cosine"), ValueError, "beta_schedule must be one of"),
    ("paths.Discrete", "table not decreasing", lambda: paths.Discrete(alphas_cumprod=torch.tensor([0.5, 0.9])),
     ValueError, "alphas_cumprod must hold at least two strictly decreasing"),
    ("paths.Discrete", "table and schedule", lambda: paths.Discrete("linear", alphas_cumprod=torch.tensor([0.9, 0.5])),
     ValueError, "alphas_cumprod replaces the beta schedule"),
    ("paths.Discrete.t_of_timestep", "too large", lambda: paths.Discrete().t_of_timestep(1000), ValueError,
     "timestep must lie in [-1, 999]"),
    ("paths.Discrete.t_of_timestep", "string", lambda: paths.Discrete().t_of_timestep("999"), TypeError,
     "timestep must be a number"),
    ("paths.Discrete.timestep_of_t", "t > 1", lambda: paths.Discrete().timestep_of_t(1.5), ValueError,
     "t must be finite and lie in [0, 1]"),
    ("paths.Discrete.scheduler_timesteps", "spacing", lambda: paths.Discrete().scheduler_timesteps(10, "karras"),
     ValueError, "spacing must be one of"),
    ("paths.Discrete.scheduler_timesteps", "steps > T", lambda: paths.Discrete().scheduler_timesteps(1001),
     ValueError, "steps must be <= num_train_timesteps = 1000"),
    ("paths.Discrete.timesteps", "t_max with trailing", lambda: paths.Discrete().timesteps(5, t_max=0.5),
     ValueError, "t_max and t_min do not apply"),
    ("paths.Discrete.timesteps", "grid length", lambda: paths.Discrete().timesteps(5, spacing=torch.ones(3)),
     ValueError, "a 1-D tensor of steps + 1 = 6 times"),
    ("paths.beta_schedule", "kind", lambda: paths.beta_schedule("squaredcos"), ValueError, "kind must be one of"),
    ("paths.beta_schedule", "start > end", lambda: paths.beta_schedule("linear", beta_start=0.1, beta_end=0.01),
     ValueError, "need 0 < beta_start <= beta_end < 1"),
    ("paths.rescale_zero_terminal_snr", "beta 1", lambda: paths.rescale_zero_terminal_snr(torch.tensor([0.1, 1.0])),
     ValueError, "betas must hold at least two values in (0, 1)"),
    ("paths.rescale_zero_terminal_snr", "list", lambda: paths.rescale_zero_terminal_snr([0.1, 0.2]), TypeError,
     "betas must be a torch.Tensor"),
    ("samplers.dpmpp_2m", "steps 0", lambda: samplers.dpmpp_2m(score, x, path, 0), ValueError, "steps must be >= 1"),
    ("samplers.dpmpp_2m", "grid not decreasing", lambda: samplers.dpmpp_2m(score, x, path, 2,
                                                                         spacing=torch.tensor([0.9, 0.9, 0.1])),
     ValueError, "strictly decreasing"),
    ("samplers.dpmpp_2m", "pred", lambda: samplers.dpmpp_2m(score, x, path, 2, pred="noise"), ValueError,
     "pred must be one of"),
    ("models.ExactDenoiser", "mix", lambda: models.ExactDenoiser("mixture", path), TypeError,
     "mix must be a cfglab.GaussianMixture"),
    ("models.ExactDenoiser", "pred", lambda: models.ExactDenoiser(mix, path, pred="noise"), ValueError,
     "pred must be one of"),
    ("models.ExactDenoiser.x0", "label", lambda: models.ExactDenoiser(mix, path).x0(x, t4, 7), ValueError,
     "y must"),
    ("models.ExactDenoiser.__call__", "x dim", lambda: models.ExactDenoiser(mix, path)(torch.zeros(4, 3), t4, 0),
     ValueError, "x must have last dimension 2"),
    ("models.ExactDenoiser.predict", "kind", lambda: models.ExactDenoiser(mix, path).predict(x, t4, 0, kind="logit"),
     ValueError, "kind must be one of"),
    ("guidance.guided", "interval reversed", lambda: guidance.guided(model, 0, 2.0, interval=(0.8, 0.2)), ValueError,
     "interval must have start <= stop"),
    # -- the attention denoiser and guidance from a perturbed self (chapter 17) ------------------------------------
    ("models.AttentionDenoiser", "width", lambda: models.AttentionDenoiser(8, 10, width=30, heads=4), ValueError,
     "width must be a multiple of heads"),
    ("models.AttentionDenoiser", "patch", lambda: models.AttentionDenoiser(8, 10, patch=3), ValueError,
     "size must be a multiple of patch"),
    ("models.AttentionDenoiser.forward", "shape", lambda: models.AttentionDenoiser(8, 10, width=8, heads=2)(
        torch.zeros(2, 1, 6, 6), 0.5), ValueError, "x must have shape (n, 1, 8, 8)"),
    ("models.AttentionDenoiser.forward", "block", lambda: models.AttentionDenoiser(8, 10, width=8, heads=2)(
        torch.zeros(2, 1, 8, 8), 0.5, perturb=models.Perturbation("skip", (2,))), ValueError,
     "perturb.blocks must be block indices in 0..1"),
    ("models.AttentionDenoiser.forward", "rows", lambda: models.AttentionDenoiser(8, 10, width=8, heads=2)(
        torch.zeros(2, 1, 8, 8), 0.5, perturb=models.Perturbation("skip", (0,)), rows=torch.ones(3).bool()),
     ValueError, "rows must be a boolean tensor of shape (2,)"),
    ("models.AttentionDenoiser.predict", "kind", lambda: models.AttentionDenoiser(8, 10, width=8, heads=2).predict(
        torch.zeros(2, 1, 8, 8), 0.5, kind="logits"), ValueError, "kind must be one of"),
    ("models.Perturbation", "kind", lambda: models.Perturbation("dropout", (0,)), ValueError, "kind must be one of"),
    ("models.Perturbation", "sigma", lambda: models.Perturbation("blur", (0,), -1.0), ValueError,
     "sigma must be a number >= 0"),
    ("models.grid_blur", "sigma", lambda: models.grid_blur(4, nan), ValueError, "sigma must be a number >= 0"),
    ("guidance.perturbed_guidance", "shapes", lambda: guidance.perturbed_guidance(x, torch.zeros(4, 3), 2.0),
     ValueError, "predictions must have one shape"),
    ("guidance.cfg_perturbed", "scale", lambda: guidance.cfg_perturbed(x, x, x, 2.0, nan), ValueError,
     "scale must be finite"),
    ("guidance.scale_from_diffusers", "type", lambda: guidance.scale_from_diffusers("2", 5.0), TypeError,
     "perturbed_guidance_scale must be a real number"),
    ("guidance.perturbed_guided", "guide", lambda: guidance.perturbed_guided(unet, 1, 2.0,
                                                                              models.Perturbation("skip", (0,))),
     TypeError, "must take perturb="),
    # -- guidance distillation and guidance learned in training (chapters 13-14) -----------------------------------
    ("models.GuidedMLP", "w_scale", lambda: models.GuidedMLP(2, 3, w_scale=0.0), ValueError, "w_scale must be > 0"),
    ("models.GuidedMLP.scales", "shape", lambda: models.GuidedMLP(2, 3, width=8, depth=1).scales(torch.ones(3), x),
     ValueError, "guidance must be a number or have shape (4,)"),
    ("models.GuidedMLP.forward", "guidance", lambda: models.GuidedMLP(2, 3, width=8, depth=1)(x, 0.5, 0, nan),
     ValueError, "guidance must be finite"),
    ("models.GuidedMLP.predict", "kind", lambda: models.GuidedMLP(2, 3, width=8, depth=1).predict(x, 0.5, kind="v0"),
     ValueError, "kind must be one of"),
    ("distill.cfg_target", "w shape", lambda: importlib.import_module("cfglab.distill").cfg_target(
        model, x, 0.5, 0, torch.ones(3)), ValueError, "w must be a number or a floating (n,) tensor with n = 4"),
    ("distill.distillation_loss", "student", lambda: importlib.import_module("cfglab.distill").distillation_loss(
        model, model, x, 0), TypeError, "student must be a cfglab.models.GuidedMLP"),
    ("distill.distill_iter", "w_range", lambda: importlib.import_module("cfglab.distill").distill_iter(
        models.GuidedMLP.from_teacher(model), model, mix, w_range=(5.0, 1.0)), ValueError,
     "w_range must have w_min <= w_max"),
    ("distill.distill", "classes", lambda: importlib.import_module("cfglab.distill").distill(
        models.GuidedMLP(2, 2, width=8, depth=1), model, mix, steps=2), ValueError,
     "student and teacher must know the same classes"),
    ("distill.distilled", "negative", lambda: importlib.import_module("cfglab.distill").distilled(
        models.GuidedMLP(2, 3, width=8, depth=1), 0, 3.0, true_cfg_scale=2.0, negative=5), ValueError,
     "negative must be class labels in 0..2 or the null label 3"),
    ("distill.effective_scale", "no direction", lambda: importlib.import_module("cfglab.distill").effective_scale(
        x, x, x), ValueError, "cond equals uncond everywhere"),
    ("train_guided.scale_of_model_guidance", "w = 1", lambda: importlib.import_module(
        "cfglab.train_guided").scale_of_model_guidance(1.0), ValueError, "w must be in [0, 1)"),
    ("train_guided.model_guidance_target", "shapes", lambda: importlib.import_module(
        "cfglab.train_guided").model_guidance_target(x, x, torch.zeros(4, 3), 0.5), ValueError,
     "target, cond and uncond must have one shape"),
    ("train_guided.model_guidance_loss", "model", lambda: importlib.import_module(
        "cfglab.train_guided").model_guidance_loss(unet, x, 0), TypeError, "model must be a cfglab.MLP"),
    ("train_guided.guidance_free_loss", "beta_min", lambda: importlib.import_module(
        "cfglab.train_guided").guidance_free_loss(models.GuidedMLP(2, 3, width=8, depth=1), x, 0, beta_min=2.0),
     ValueError, "beta_min must be in (0, 1]"),
    ("train_guided.fit_model_guidance", "w", lambda: importlib.import_module(
        "cfglab.train_guided").fit_model_guidance(model, mix, w=1.5, steps=2), ValueError, "w must be in [0, 1)"),
    ("train_guided.fit_guidance_free", "model", lambda: importlib.import_module(
        "cfglab.train_guided").fit_guidance_free(model, mix, steps=2), TypeError,
     "model must be a cfglab.models.GuidedMLP"),
    ("train_guided.model_guidance_iter", "model", lambda: importlib.import_module(
        "cfglab.train_guided").model_guidance_iter(models.GuidedMLP(2, 3, width=8, depth=1), mix), TypeError,
     "model must be a cfglab.MLP"),
    ("train_guided.guidance_free_iter", "beta_min", lambda: importlib.import_module(
        "cfglab.train_guided").guidance_free_iter(models.GuidedMLP(2, 3, width=8, depth=1), mix, beta_min=0.0),
     ValueError, "beta_min must be > 0"),
]

EXEMPT = {
    "paths.Path": "abstract base class without arguments; its methods have cases, called on Linear/VP instances",
    "paths.Linear": "takes no arguments",
    "claims.ClaimError": "an exception class, raised by claims.check with its message",
    "install.SetupError": "an exception class, raised by install.require with its one-sentence message",
    "compare.Interval": "a record returned by compare.interval, not built from user input",
    "compare.Comparison": "a record returned by compare.versus_baseline, not built from user input",
    "paths.Coefficients": "a frozen record built by Path.__call__ from checked times, not from user input",
    "samplers.Trajectory": "a record returned by the samplers, not built from user input",
    "train.TrainStep": "a record yielded by train_iter, not built from user input",
    "train.Data": "a typing Protocol, never called",
    "train.Data.sample": "the signature of a typing Protocol, never called",
    "data.GaussianMixture.fingerprint": "takes no arguments",
    "data.TensorData.fingerprint": "takes no arguments",
    "data.AttributeToy.fingerprint": "takes no arguments",
    "train_multi.MultiLabelData.fingerprint": "takes no arguments",
    "text.MarkovText.fingerprint": "takes no arguments",
    "cache.directory": "takes no arguments (reads $CFGLAB_CACHE)",
    "digits.Judge.floor": "takes no arguments (scores the judge's own real sets)",
}
EXEMPT_MODULES = {
    "cfglab.exercises": "check_* take a student's function and report its errors as a Verdict; the bad-student-code "
                        "cases are tested in tests/test_exercises_*.py",
    "cfglab.explore": "owned by explorer work, covered in tests/test_explore.py",
    "cfglab.animate": "owned by explorer work, covered in tests/test_explore.py",
}


@pytest.mark.parametrize("target,desc,fn,exc,fragment", CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_bad_input(target, desc, fn, exc, fragment):
    with pytest.raises(exc) as info:
        fn()
    assert fragment in str(info.value)


def _exempt_module(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in EXEMPT_MODULES)


def _public_module(module: str, name: str, obj: object) -> str:
    """The outermost cfglab module that exposes ``obj`` as ``name``, without the ``cfglab.`` prefix: a package that
    re-exports its submodules (``cfglab.guidance`` for ``cfglab.guidance.rules.cfg``) keys the cases, so splitting a
    module into a package keeps every key. Never the top level ``cfglab`` itself."""
    parts = module.split(".")
    while len(parts) > 2 and getattr(importlib.import_module(".".join(parts[:-1])), name, None) is obj:
        parts.pop()
    return ".".join(parts[1:])


def public_callables() -> dict[str, object]:
    """Every public function and class defined in a public cfglab module, and every public method (plus
    ``__call__``) defined in the body of those classes, keyed like the first column of ``CASES`` (by the package
    that re-exports them, see :func:`_public_module`)."""
    found = {}
    for info in pkgutil.walk_packages(cfglab.__path__, "cfglab."):
        if any(part.startswith("_") for part in info.name.split(".")) or _exempt_module(info.name):
            continue
        mod = importlib.import_module(info.name)
        for name, obj in vars(mod).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
                continue
            short = _public_module(mod.__name__, name, obj)
            if inspect.isfunction(obj):
                found[f"{short}.{name}"] = obj
            elif inspect.isclass(obj):
                found[f"{short}.{name}"] = obj
                for attr, member in vars(obj).items():
                    if (not attr.startswith("_") or attr == "__call__") and inspect.isfunction(member):
                        found[f"{short}.{name}.{attr}"] = member
    return found


def test_every_public_callable_has_a_case():
    names = public_callables()
    covered = {c[0] for c in CASES}
    missing = sorted(n for n in names if n not in covered and n not in EXEMPT)
    assert not missing, f"public callables with neither a bad-input case nor an exemption: {missing}"
    stale = sorted((covered | set(EXEMPT)) - set(names))
    assert not stale, f"cases or exemptions for names that no longer exist: {stale}"
    assert all(len(reason) > 10 for reason in [*EXEMPT.values(), *EXEMPT_MODULES.values()])


def test_every_public_callable_has_a_docstring():
    undocumented = sorted(name for name, obj in public_callables().items() if not inspect.getdoc(obj))
    assert not undocumented, f"public callables without a docstring: {undocumented}"


def test_the_top_level_api_is_covered():
    """Every callable re-exported by ``cfglab`` is one of the introspected names (or lives in an exempt module)."""
    defined = {id(obj) for obj in public_callables().values()}
    for name in cfglab.__all__:
        obj = getattr(cfglab, name)
        if inspect.ismodule(obj) or not callable(obj):
            continue
        assert id(obj) in defined or _exempt_module(obj.__module__), name


def test_sampler_divergence_is_reported():
    with pytest.raises(FloatingPointError, match="sampling diverged"):
        samplers.langevin(lambda x_: x_ * 1e30, torch.ones(4, 2), 1.0, 20)
