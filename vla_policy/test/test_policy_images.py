import torch
import torch.nn.functional as F

from vla_policy.images import augment_images


def reference_augment(images, generator, shift, brightness=0.2, contrast=0.2, saturation=0.2):
    """The textbook form: replicate-pad and crop, then brightness, contrast and saturation one by one."""
    B, T, H, W, C = images.shape
    x = images.permute(0, 1, 4, 2, 3).reshape(B, T * C, H, W).float()
    padded = F.pad(x, (shift,) * 4, mode='replicate')
    offs = torch.randint(0, 2 * shift + 1, (B, 2), generator=generator).tolist()
    x = torch.stack([padded[b, :, oy:oy + H, ox:ox + W] for b, (oy, ox) in enumerate(offs)]).reshape(B, T, C, H, W)

    def factor(amount):
        return 1.0 + (torch.rand(B, 1, 1, 1, 1, generator=generator) * 2 - 1) * amount

    x = x * factor(brightness)
    mean = x.mean(dim=(2, 3, 4), keepdim=True)
    x = (x - mean) * factor(contrast) + mean
    gray = 0.299 * x[:, :, 0:1] + 0.587 * x[:, :, 1:2] + 0.114 * x[:, :, 2:3]
    x = (x - gray) * factor(saturation) + gray
    return x.clamp(0, 255).round().to(torch.uint8).permute(0, 1, 3, 4, 2)


def test_augmentation_equals_the_textbook_transforms():
    images = torch.randint(0, 256, (6, 2, 16, 20, 3), dtype=torch.uint8)
    images[:, :, 3:7, 5:9] = 250
    got = augment_images(images, torch.Generator().manual_seed(3), shift=3)
    want = reference_augment(images, torch.Generator().manual_seed(3), shift=3)
    assert got.shape == images.shape and got.dtype == torch.uint8 and got.is_contiguous()
    assert (got.int() - want.int()).abs().max() <= 1  # float rounding only
    # every frame of a sample gets the same transform; a plain shift moves the pixels, edges replicated
    assert torch.equal(augment_images(images[:, :1].repeat(1, 2, 1, 1, 1), torch.Generator().manual_seed(1),
                                      shift=3)[:, 0],
                       augment_images(images[:, :1].repeat(1, 2, 1, 1, 1), torch.Generator().manual_seed(1),
                                      shift=3)[:, 1])
    shifted = augment_images(images, torch.Generator().manual_seed(0), shift=2, brightness=0, contrast=0,
                             saturation=0)
    offs = torch.randint(0, 5, (6, 2), generator=torch.Generator().manual_seed(0)) - 2
    dy, dx = offs[0].tolist()
    rows = (torch.arange(16) + dy).clamp(0, 15)
    cols = (torch.arange(20) + dx).clamp(0, 19)
    assert torch.equal(shifted[0], images[0][:, rows][:, :, cols])
    assert torch.equal(augment_images(images, shift=0, brightness=0, contrast=0, saturation=0), images)
