"""scikit-learn's bundled 8×8 handwritten digits (1797 images, no download), scaled to [−1, 1]."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from empirical.errors import EmpiricalInputError

DIGIT_SIZES = (8, 16, 32)


def load_digits(size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (1797, 1, size, size) float32 in [−1, 1] and labels; size 16 or 32 upsamples bilinearly."""
    if size not in DIGIT_SIZES:
        raise EmpiricalInputError(f"digits: image size {size} is not one of {DIGIT_SIZES}")
    from sklearn.datasets import load_digits as sklearn_digits  # lazy: sklearn is slow to import

    bunch = sklearn_digits()
    # Pixel values are integers 0..16: x/8 − 1 maps them onto [−1, 1] exactly, the range of the generator's tanh.
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 8.0 - 1.0
    if size != 8:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False).clamp(-1.0, 1.0)
    return images.contiguous(), torch.tensor(bunch.target, dtype=torch.long)
