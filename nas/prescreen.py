"""Training-free pre-screen: NASWOT (Mellor et al., 2021, "Neural Architecture Search without
Training"). Score = log|det K|, K[i, j] = how many activation units images i and j agree on
(both active or both inactive) over one batch at initialisation. Networks whose activations tell
the images of a batch apart score higher and tend to train to higher accuracy. One forward pass,
no labels, no training."""
from __future__ import annotations

import random

import torch
from torch import nn

from .budget import estimate
from .data import Loader, subset
from .spaces.space import candidate_key
from .train import fit_whitening

ACTIVATIONS = (nn.ReLU, nn.GELU, nn.SiLU, nn.Hardswish)


@torch.no_grad()
def naswot(model: nn.Module, images: torch.Tensor, seed: int = 0) -> float:
    """NASWOT score of `model` (freshly initialised with `seed`) on a batch of normalised images."""
    codes = []

    def hook(module, inputs, output):
        codes.append((inputs[0] > 0).flatten(1).float())

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in model.modules():  # re-initialise deterministically
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
    fit_whitening(model, images)  # a whitened stem is fitted before training: so here too
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, ACTIVATIONS)]
    try:
        model.train()  # batch statistics, as at the start of training
        model(images)
    finally:
        for h in handles:
            h.remove()
    if not codes:
        return float("-inf")
    c = torch.cat(codes, dim=1).double()
    k = c @ c.t() + (1 - c) @ (1 - c).t()
    return torch.linalg.slogdet(k)[1].item()


class Prescreen:
    """Keeps a candidate when its NASWOT score reaches the top `keep` fraction of a seeded sample
    of feasible candidates. Scores use a fixed batch of training images (never validation or test)."""

    REFERENCE = 100

    def __init__(self, space, budget, split, mean, std, keep: float, seed: int):
        self.space, self._cache = space, {}
        self.images = next(iter(Loader(subset(split, min(1.0, 64 / len(split)), seed), mean, std, 64, "cpu")))[0]
        rng, reference = random.Random(seed), []
        for _ in range(self.REFERENCE * 50):
            if len(reference) == self.REFERENCE:
                break
            candidate = space.sample(rng)
            if budget.fits(estimate(space.resolve(candidate))):
                reference.append(self.score(candidate))
        reference.sort()
        if keep >= 1 or not reference:  # keeping everything screens nothing out
            self.threshold = float("-inf")
        else:
            self.threshold = reference[min(len(reference) - 1, int((1 - keep) * len(reference)))]

    def score(self, candidate: dict) -> float:
        key = candidate_key(candidate)
        if key not in self._cache:
            self._cache[key] = naswot(self.space.build(candidate), self.images)
        return self._cache[key]

    def keeps(self, candidate: dict) -> bool:
        return self.score(candidate) >= self.threshold
