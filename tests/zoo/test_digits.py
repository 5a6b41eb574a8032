"""The digits CNN trains quickly and deterministically on the fixed split."""

import pytest
import torch

from edgeprune.zoo.digits import train_digits_cnn


def test_training_is_deterministic_for_a_seed():
    a, acc_a = train_digits_cnn(epochs=1, seed=3)
    b, acc_b = train_digits_cnn(epochs=1, seed=3)
    assert acc_a == acc_b
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert not a.training


@pytest.mark.slow
def test_trained_cnn_classifies_held_out_digits():
    model, accuracy = train_digits_cnn(epochs=8, seed=0)
    assert accuracy > 0.95
    assert not model.training
