"""Small torch architectures, one per coupling pattern the channel analysis must handle."""

import torch
import torch.nn as nn
import torch.nn.functional as F


def cbr(cin, cout, k=3, s=1, g=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, groups=g, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class Chain(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = cbr(3, 16)
        self.b = nn.Sequential(nn.Conv2d(16, 24, 3, padding=1), nn.LeakyRelu(0.1) if False else nn.LeakyReLU(0.1))
        self.c = nn.Conv2d(24, 8, 1)

    def forward(self, x):
        return self.c(self.b(self.a(x)))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = cbr(3, 16)
        self.b1 = nn.Sequential(cbr(16, 32), nn.Conv2d(32, 16, 3, padding=1), nn.BatchNorm2d(16))
        self.b2 = nn.Sequential(cbr(16, 32), nn.Conv2d(32, 16, 3, padding=1), nn.BatchNorm2d(16))
        self.head = nn.Conv2d(16, 4, 1)

    def forward(self, x):
        x = self.stem(x)
        x = F.relu(x + self.b1(x))
        x = F.relu(x - self.b2(x))
        return self.head(x)


class ConcatSplit(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = cbr(3, 16)
        self.b = cbr(3, 24)
        self.c = cbr(40, 32, 1)
        self.d = cbr(16, 16)
        self.e = nn.Conv2d(48, 8, 1)

    def forward(self, x):
        y = self.c(torch.cat([self.a(x), self.b(x)], 1))
        p, q = torch.split(y, [16, 16], dim=1)
        return self.e(torch.cat([self.d(p), q, y[:, 4:20]], 1))


class Depthwise(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = cbr(3, 16)
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.BatchNorm2d(16), nn.ReLU6())
        self.dw2 = nn.Conv2d(16, 32, 3, padding=1, groups=16)   # depth multiplier 2
        self.pw = nn.Conv2d(32, 8, 1)

    def forward(self, x):
        return self.pw(F.hardswish(self.dw2(self.dw(self.a(x)))))


class Grouped(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = cbr(3, 32, 1)
        self.g = cbr(32, 32, 3, g=8)
        self.b = cbr(32, 16, 1)
        self.g2 = nn.Conv2d(16, 32, 3, padding=1, groups=4)  # 4 in, 8 out per group: frozen
        self.c = nn.Conv2d(32, 8, 1)

    def forward(self, x):
        return self.c(self.g2(self.b(self.g(self.a(x)))))


class SqueezeExcite(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = cbr(3, 32)
        self.fc1 = nn.Conv2d(32, 8, 1)
        self.fc2 = nn.Conv2d(8, 32, 1)
        self.b = nn.Conv2d(32, 8, 1)

    def forward(self, x):
        x = self.a(x)
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        x = x * s
        x = x * torch.sigmoid(x)   # SiLU written out
        return self.b(x)


class FlattenLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = cbr(3, 16)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = self.pool(self.a(x))
        x = torch.flatten(x, 1)
        return self.fc2(F.gelu(self.fc1(x)))


class UpConcat(nn.Module):
    def __init__(self):
        super().__init__()
        self.e1 = cbr(3, 16)
        self.e2 = cbr(16, 32, s=2)
        self.up = nn.ConvTranspose2d(32, 16, 2, stride=2)
        self.up2 = nn.Upsample(scale_factor=2, mode="nearest")
        self.d = cbr(16 + 16 + 32, 16)
        self.out = nn.Conv2d(16, 2, 1)

    def forward(self, x):
        a = self.e1(x)
        b = self.e2(F.pad(a, (0, 0, 0, 0)))
        return self.out(self.d(torch.cat([a, self.up(b), self.up2(b)], 1)))


class Mlp(nn.Module):
    """Transformer-style tokens: channels on the last axis, LayerNorm over them."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(3, 32, 4, 4)
        self.norm = nn.LayerNorm(32)
        self.fc1 = nn.Linear(32, 64)
        self.fc2 = nn.Linear(64, 32)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)
        t = t + self.fc2(F.gelu(self.fc1(self.norm(t))))
        return self.head(t.mean(1))


class Attention(nn.Module):
    def __init__(self, dim=32, heads=4):
        super().__init__()
        self.heads = heads
        self.embed = nn.Conv2d(3, dim, 4, 4)
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, 10)

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)
        b, n, c = t.shape
        qkv = self.qkv(t).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = (q @ k.transpose(-2, -1) * 0.5).softmax(-1)
        t = t + self.proj((a @ v).transpose(1, 2).reshape(b, n, c))
        return self.head(t.mean(1))


class SeparateQKV(nn.Module):
    """Separate q/k/v projections through torch's fused attention (exported decomposed)."""

    def __init__(self, dim=32, heads=4):
        super().__init__()
        self.heads = heads
        self.embed = nn.Conv2d(3, dim, 4, 4)
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, 10)

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)
        b, n, c = t.shape

        def split(y):
            return y.view(b, n, self.heads, c // self.heads).transpose(1, 2)

        o = F.scaled_dot_product_attention(split(self.q(t)), split(self.k(t)), split(self.v(t)))
        t = t + self.proj(o.transpose(1, 2).reshape(b, n, c))
        return self.head(t.mean(1))


ARCHS = {
    "chain": (Chain, (1, 3, 8, 8)),
    "residual": (Residual, (1, 3, 8, 8)),
    "concat_split": (ConcatSplit, (1, 3, 8, 8)),
    "depthwise": (Depthwise, (1, 3, 8, 8)),
    "grouped": (Grouped, (1, 3, 8, 8)),
    "squeeze_excite": (SqueezeExcite, (1, 3, 8, 8)),
    "flatten_linear": (FlattenLinear, (1, 3, 8, 8)),
    "up_concat": (UpConcat, (1, 3, 8, 8)),
    "mlp": (Mlp, (1, 3, 16, 16)),
    "attention": (Attention, (1, 3, 16, 16)),
    "separate_qkv": (SeparateQKV, (1, 3, 16, 16)),
}
