"""Image preparation shared by training and inference (same resize on both sides) and
training-time augmentation on batches."""
from __future__ import annotations

import cv2
import numpy as np
import torch


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

    Done in few passes: the shift is one gather of the uint8 pixels (replicate padding is a
    clamped index), and brightness, contrast and saturation, all affine in the pixel values and
    the grey level, fold into one ``a * x + b * grey + c`` per sample (the grey weights sum to 1).
    """
    B, T, H, W, C = images.shape  # batch, time, height, width, channels
    dev = images.device
    x = images
    if shift > 0:
        offs = torch.randint(0, 2 * shift + 1, (B, 2), generator=generator, device=dev) - shift
        rows = (torch.arange(H, device=dev) + offs[:, :1]).clamp_(0, H - 1)  # (B, H)
        cols = (torch.arange(W, device=dev) + offs[:, 1:]).clamp_(0, W - 1)  # (B, W)
        b = torch.arange(B, device=dev)[:, None, None, None]
        t = torch.arange(T, device=dev)[None, :, None, None]
        x = x[b, t, rows[:, None, :, None], cols[:, None, None, :]]  # (B, T, H, W, C)

    def factor(amount: float) -> torch.Tensor:
        return 1.0 + (torch.rand(B, 1, 1, 1, 1, generator=generator, device=dev) * 2 - 1) * amount

    if not (brightness > 0 or contrast > 0 or saturation > 0):
        return x.contiguous()
    fb = factor(brightness) if brightness > 0 else torch.ones(B, 1, 1, 1, 1, device=dev)
    fc = factor(contrast) if contrast > 0 else torch.ones_like(fb)
    fs = factor(saturation) if saturation > 0 else torch.ones_like(fb)
    x = x.float()
    # brightness then contrast about the (brightened) frame mean: a * x + (1 - fc) * fb * mean
    a = fb * fc
    offset = (1.0 - fc) * fb * x.mean(dim=(2, 3, 4), keepdim=True)
    grey = x @ x.new_tensor([0.299, 0.587, 0.114]).unsqueeze(-1)  # (B, T, H, W, 1)
    # saturation about the grey level of the jittered frame (= a * grey + offset)
    out = torch.addcmul(offset, x, a * fs).addcmul_(grey, a * (1.0 - fs))
    return out.clamp_(0.0, 255.0).round_().to(torch.uint8)
