"""Minimal reproductions of bugs the random graphs found, kept as plain tests."""

import torch
import torch.nn as nn

from edgeprune.graph import analyze
from edgeprune.importance import scores
from edgeprune.rewrite import ratio_keep
from tests.helpers import assert_invariant, export


class ConcatThenResidual(nn.Module):
    """Two producers concatenated, then tied to a third by a residual add: one group whose
    channels come from three convs. A conv may not lose *all* of its output channels."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 2, 1)
        self.b = nn.Conv2d(3, 4, 1)
        self.c = nn.Conv2d(6, 6, 1)
        self.head = nn.Conv2d(6, 2, 1)
        with torch.no_grad():     # a's filters are the least important by magnitude
            self.a.weight.mul_(1e-3)

    def forward(self, x):
        y = torch.cat([self.a(x), self.b(x)], 1)
        return self.head(y + self.c(y))


class SplitHalves(nn.Module):
    """A CSP-style split whose most important channels all sit in the first half."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 1)
        self.p = nn.Conv2d(4, 4, 1)
        self.head = nn.Conv2d(8, 2, 1)
        with torch.no_grad():
            self.a.weight[4:].mul_(1e-3)

    def forward(self, x):
        p, q = torch.split(self.a(x), [4, 4], 1)
        return self.head(torch.cat([self.p(p), q], 1))


def _ratio_prune(module, ratio):
    model = export(module, (1, 3, 4, 4))
    analysis = analyze(model)
    keep = ratio_keep(analysis, scores(model, analysis, "l1"), ratio, 1)
    assert keep
    return assert_invariant(model, keep, analysis=analysis)


def test_ratio_pruning_never_empties_one_producer_of_a_shared_group():
    _ratio_prune(ConcatThenResidual(), 0.5)


def test_ratio_pruning_never_empties_one_output_of_a_split():
    _ratio_prune(SplitHalves(), 0.5)
