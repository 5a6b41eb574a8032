"""Image preprocessing shared by image-folder DATA and the bundled natural images:
cover-resize, center-crop, normalise, lay out as the model's input wants."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import UsageError


@dataclass(frozen=True)
class Normalization:
    """x = (pixel / 255 - mean) / std per channel, with mean and std in 0..1 units."""

    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)

    def check(self, channels: int) -> None:
        for flag, values in (("--mean", self.mean), ("--std", self.std)):
            if len(values) not in (1, channels):
                raise UsageError(f"{flag} has {len(values)} values; the model input has {channels} "
                                 "channels (give 1 or one per channel)")

    def apply(self, pixels: np.ndarray, channel_axis: int) -> np.ndarray:
        """`pixels` in 0..255 (any float or uint8 array); returns float32."""
        shape = [1] * pixels.ndim
        shape[channel_axis] = -1
        mean = np.asarray(self.mean, np.float32).reshape(shape)
        std = np.asarray(self.std, np.float32).reshape(shape)
        return ((pixels.astype(np.float32) / 255.0 - mean) / std).astype(np.float32)


# common conventions, in 0..1 units
IMAGENET = Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
TFLITE = Normalization((127.0 / 255.0,), (128.0 / 255.0,))  # (pixel - 127) / 128
UNIT = Normalization()  # pixel / 255


def parse_normalization(mean, std) -> Normalization:
    """--mean/--std as given: None, a number, a sequence or a comma-separated string.

    Values are in 0..1 units (ImageNet: 0.485,0.456,0.406); if any value exceeds 1 all of
    them are read as 0..255 pixel units (TFLite: --mean 127 --std 128)."""
    m = _floats(mean, "--mean") if mean is not None else (0.0,)
    s = _floats(std, "--std") if std is not None else (1.0,)
    if any(v <= 0 for v in s):
        raise UsageError(f"--std {_text(s)}: every value must be positive")
    if len(m) > 1 and len(s) > 1 and len(m) != len(s):
        raise UsageError(f"--mean has {len(m)} values but --std has {len(s)}")
    if max(m + s) > 1.0:
        m, s = tuple(v / 255.0 for v in m), tuple(v / 255.0 for v in s)
    return Normalization(m, s)


def _floats(value, flag: str) -> tuple[float, ...]:
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, Sequence) else [value]
    try:
        out = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        raise UsageError(f"{flag} '{value}': expected a number or comma-separated numbers") from None
    if not out or not all(np.isfinite(out)):
        raise UsageError(f"{flag} '{value}': expected finite numbers")
    return out


def _text(values) -> str:
    return ",".join(f"{v:g}" for v in values)


def parse_image_size(value) -> tuple[int, int] | None:
    """--image-size: None, an int, (h, w), "224" or "224x192" (height x width)."""
    if value is None:
        return None
    try:
        if isinstance(value, str):
            parts = [int(p) for p in value.lower().split("x")]
        elif isinstance(value, Sequence):
            parts = [int(p) for p in value]
        else:
            parts = [int(value)]
    except (TypeError, ValueError):
        parts = []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) <= 0:
        raise UsageError(f"--image-size '{value}': expected a positive size like 224 or 224x192")
    return parts[0], parts[1]


def cover_crop(image: Image.Image, height: int, width: int) -> Image.Image:
    """Resize so the image covers height x width, keeping its aspect, then center-crop."""
    w, h = image.size
    scale = max(height / h, width / w)
    rw, rh = max(width, round(w * scale)), max(height, round(h * scale))
    resized = image.resize((rw, rh), Image.BILINEAR)
    left, top = (rw - width) // 2, (rh - height) // 2
    return resized.crop((left, top, left + width, top + height))


def to_array(image: Image.Image, channels: int) -> np.ndarray:
    """HWC uint8 with 1 or 3 channels."""
    if channels == 1:
        return np.asarray(image.convert("L"))[:, :, None]
    if channels == 3:
        return np.asarray(image.convert("RGB"))
    raise UsageError(f"image DATA gives 1 or 3 channels; the model input wants {channels}")


@dataclass(frozen=True)
class ImageLayout:
    """Where channels and spatial dims sit in a model input shape."""

    channels_last: bool
    channels: int
    height: int
    width: int

    @classmethod
    def of(cls, shape: Sequence[int], name: str) -> "ImageLayout":
        if len(shape) != 4:
            raise UsageError(f"image DATA needs a 4-D image input; model input '{name}' has shape "
                             f"{'x'.join(map(str, shape))}")
        # NCHW unless only the last axis looks like channels (some exporters keep NHWC)
        if shape[1] not in (1, 3) and shape[3] in (1, 3):
            return cls(True, shape[3], shape[1], shape[2])
        return cls(False, shape[1], shape[2], shape[3])

    def stack(self, hwc_images: list[np.ndarray]) -> np.ndarray:
        batch = np.stack(hwc_images)  # N, H, W, C
        return batch if self.channels_last else batch.transpose(0, 3, 1, 2)
