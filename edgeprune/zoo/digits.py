"""A small BN CNN for scikit-learn's digits upsampled to 32x32, and a quick trainer."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from ._init import init_weights, seeded

IMAGE_SIZE = 32


def _stage(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class DigitsCNN(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 8):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _stage(1, w), nn.MaxPool2d(2),
            _stage(w, 2 * w), nn.MaxPool2d(2),
            _stage(2 * w, 4 * w), _stage(4 * w, 4 * w))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * w, num_classes)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


@seeded(0)
def digits_cnn(num_classes: int = 10, width: int = 8) -> DigitsCNN:
    """The untrained digits CNN for 1x1x32x32 inputs in [0, 1] as `edgeprune.data.digits`
    gives them (random init; `train_digits_cnn` trains one)."""
    return DigitsCNN(num_classes, width)


def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(np.array(images))).argmax(1).numpy()
    return float((pred == labels).mean())


def train_digits_cnn(epochs: int = 8, seed: int = 0, width: int = 8, batch_size: int = 64,
                     lr: float = 0.01) -> tuple[DigitsCNN, float]:
    """Train the digits CNN on the fixed train split; returns (eval-mode model, test accuracy).

    Deterministic for a given seed: the seed fixes init and batch order, training runs on
    private RNG state (callers' random streams are untouched) and on one thread. One thread
    also keeps it fast on a shared 2-core machine, where two threads of tiny convolutions
    ran 10x slower than one (about 10 s for 8 epochs under load)."""
    from ..data.digits import digits

    train, test = digits("train", IMAGE_SIZE), digits("test", IMAGE_SIZE)
    x = torch.from_numpy(np.array(train.images))
    y = torch.from_numpy(np.array(train.labels))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = _train(x, y, width, epochs, batch_size, lr)
    finally:
        torch.set_num_threads(threads)
    return model, accuracy(model, test.images, test.labels)


def _train(x: Tensor, y: Tensor, width: int, epochs: int, batch_size: int, lr: float) -> DigitsCNN:
    model = DigitsCNN(width=width)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=1e-4)
    steps = epochs * ((len(x) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr * 10, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
            sched.step()
    return model.eval()
