"""Image preparation shared by training and inference (same resize on both sides) and
training-time augmentation on batches."""
from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F


def prepare_image(image: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB of any size -> (size, size, 3) uint8, area-resampled when shrinking."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'image must be an (H, W, 3) RGB array, got shape {image.shape}')
    if image.dtype != np.uint8:
        raise ValueError(f'image must be uint8 (0..255), got dtype {image.dtype}')
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return np.ascontiguousarray(image)
    interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(image), (size, size), interpolation=interp)


def augment_images(images: torch.Tensor, generator: torch.Generator | None = None,
                   shift: int = 4, brightness: float = 0.2, contrast: float = 0.2,
                   saturation: float = 0.2) -> torch.Tensor:
    """Random shift (replicate-pad + crop, DrQ) and colour jitter, per sample.

    ``images``: (B, T, H, W, 3) uint8; every frame of one sample gets the same transform, so the
    history stays consistent. Returns the same shape and dtype. ``generator`` makes it
    reproducible (it must live on the images' device).
    """
    B, T, H, W, C = images.shape  # batch, time, height, width, channels
    dev = images.device
    x = images.permute(0, 1, 4, 2, 3).reshape(B, T * C, H, W).float() / 255.0
    if shift > 0:
        padded = F.pad(x, (shift,) * 4, mode='replicate')
        offs = torch.randint(0, 2 * shift + 1, (B, 2), generator=generator, device=dev).tolist()
        x = torch.stack([padded[b, :, oy:oy + H, ox:ox + W] for b, (oy, ox) in enumerate(offs)])
    x = x.reshape(B, T, C, H, W)

    def factor(amount: float) -> torch.Tensor:
        return 1.0 + (torch.rand(B, 1, 1, 1, 1, generator=generator, device=dev) * 2 - 1) * amount

    if brightness > 0:
        x = x * factor(brightness)
    if contrast > 0:
        mean = x.mean(dim=(2, 3, 4), keepdim=True)
        x = (x - mean) * factor(contrast) + mean
    if saturation > 0:
        gray = (0.299 * x[:, :, 0:1] + 0.587 * x[:, :, 1:2] + 0.114 * x[:, :, 2:3])
        x = (x - gray) * factor(saturation) + gray
    x = (x.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    return x.permute(0, 1, 3, 4, 2).contiguous()
