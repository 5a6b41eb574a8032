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


class GroupedConvAcrossProducers(nn.Module):
    """A grouped conv whose conv-groups each read channels of two producers: a's 2 and b's
    first go to conv-group 0, b's second and c's 2 to conv-group 1. Removing b's second
    channel alone would break conv-group 1 (found by the random graphs)."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(3, 2, 1), nn.Conv2d(3, 2, 1), nn.Conv2d(3, 2, 1)
        self.g = nn.Conv2d(6, 6, 1, groups=2)
        self.head = nn.Conv2d(6, 2, 1)

    def forward(self, x):
        return self.head(self.g(torch.cat([self.a(x), self.b(x), self.c(x)], 1)))


def test_a_conv_group_spanning_producers_is_removed_whole_or_not_at_all():
    model = export(GroupedConvAcrossProducers(), (1, 3, 4, 4))
    analysis = analyze(model)
    for g in analysis.prunable():
        if any(m.tensor == "b.weight" for m in g.members):
            assert g.atom_size == 3, "b's channels may only go with their whole conv group"
    for ratio in (0.25, 0.5, 0.75):
        keep = ratio_keep(analysis, scores(model, analysis, "l1"), ratio, 1)
        if keep:
            assert_invariant(model, keep, analysis=analysis)
