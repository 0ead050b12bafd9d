"""VLAPolicy: vision encoder + language encoder -> per-frame fusion (with joint state) ->
temporal transformer over the frame history -> a chunk of future actions.

Token sequence of the transformer, for a history of T frames and a chunk of K actions::

    [language] [frame_{t-T+1} ... frame_t] [query_1 ... query_K]  ->  K actions

where each frame token fuses that frame's visual features, the instruction embedding and the
normalized joint positions. At inference the policy caches one fused token per frame and the
projected embedding of each instruction, and encodes a frame only when a chunk predicted within
the next ``n_obs_steps`` calls will look at it: in queue mode with ``n_obs_steps=1`` and
``n_action_steps=8``, one call in eight runs the model, the others pop the queue. That acting
half (select_action, predict_chunk, reset, check_compatible) is :mod:`vla_policy.acting`.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vla_policy.acting import ActingMixin
from vla_policy.checkpoint_files import (CONFIG_FILE, METADATA_FILE, MODEL_FILE, TOKENIZER_DIR,  # noqa: F401
                                         CheckpointError, IncompatibleCheckpoint, read_metadata,
                                         resolve_checkpoint)
from vla_policy.config import VLAConfig
from vla_policy.encoders import LanguageEncoder, VisionEncoder
from vla_policy.normalization import Normalizer


class VLAPolicy(ActingMixin, nn.Module):
    """Language-conditioned visuomotor policy predicting chunks of absolute actions.

    Inputs and outputs are in robot units; normalization statistics live in the state dict.
    """

    def __init__(self, config: VLAConfig, load_pretrained: bool = True,
                 tokenizer_dir: str | Path | None = None) -> None:
        super().__init__()
        if not config.is_configured:
            raise ValueError(f'VLAConfig has state_dim={config.state_dim}, action_dim={config.action_dim}; '
                             'set them (the trainer fills them from the dataset) before building a policy')
        self.config = config
        D = config.d_model
        self.vision = VisionEncoder(config, load_pretrained)
        # one encoder per extra camera (a wrist view looks nothing like the scene view); the
        # large pretrained CLIP encoder is shared between cameras instead
        self.extra_vision = nn.ModuleDict({c: VisionEncoder(config, load_pretrained)
                                           for c in config.extra_cameras if config.vision_encoder == 'cnn'})
        vision_dim = self.vision.out_dim * (1 + len(config.extra_cameras))
        self.language = LanguageEncoder(config, load_pretrained, tokenizer_dir)
        self.state_norm = Normalizer(config.state_dim, config.norm_eps)
        self.action_norm = Normalizer(config.action_dim, config.action_norm_eps)
        # instruction embeddings of one sentence encoder are close to each other: centre them on
        # the training instructions and scale to unit RMS so the differences carry the signal
        self.language_norm = Normalizer(self.language.out_dim, 1e-6)

        self.vision_proj = nn.Linear(vision_dim, D)
        self.language_proj = nn.Linear(self.language.out_dim, D)
        self.state_proj = nn.Linear(config.state_dim, D)
        self.fuse = nn.Sequential(nn.Linear(3 * D, D), nn.GELU(), nn.Linear(D, D), nn.LayerNorm(D))
        self.frame_pos = nn.Parameter(torch.zeros(config.n_obs_steps, D))
        # spatial tokens (config.spatial_tokens): per camera, one token per cell of the last conv
        # map, projected to D, with a learned position per cell
        self.spatial_cells = 0
        if config.spatial_tokens:
            side = self.vision.net.map_size(config.image_size)
            width = int(config.cnn_channels[-1])
            cameras = 1 + len(config.extra_cameras)
            self.spatial_proj = nn.ModuleList(nn.Linear(width, D) for _ in range(cameras))
            self.spatial_pos = nn.Parameter(torch.randn(cameras, side * side, D) * 0.02)
            self.spatial_cells = cameras * side * side
            if config.spatial_readout:
                self.readout_queries = nn.Parameter(torch.randn(config.spatial_readout, D) * 0.02)
                self.readout_norm = nn.LayerNorm(D)
                self.readout = nn.MultiheadAttention(D, config.n_heads, dropout=config.dropout, batch_first=True)
        # tokens per frame in the transformer: the fused token, then the cells or the readout's
        self.frame_tokens = 1 + (config.spatial_readout or self.spatial_cells)
        self.language_type = nn.Parameter(torch.zeros(D))
        self.action_queries = nn.Parameter(torch.randn(config.chunk_size, D) * 0.02)
        layer = nn.TransformerEncoderLayer(D, config.n_heads, config.ff_dim, config.dropout,
                                           activation='gelu', batch_first=True, norm_first=True)
        self.temporal = nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(D), nn.Linear(D, config.action_dim))
        # two-valued action dimensions (config.binary_actions): the head's output there is a logit
        binary = config.binary_actions or {}
        names = list(config.action_names) or [str(i) for i in range(config.action_dim)]
        levels = [binary.get(n, (0.0, 1.0)) for n in names]
        self.register_buffer('binary_mask', torch.tensor([n in binary for n in names]), persistent=False)
        self.register_buffer('binary_low', torch.tensor([float(lv[0]) for lv in levels]), persistent=False)
        self.register_buffer('binary_high', torch.tensor([float(lv[1]) for lv in levels]), persistent=False)
        self.metadata: dict[str, Any] = {}  # training metadata of a loaded checkpoint
        # inference: projected instruction embeddings (text -> ((1, D), the weights' versions))
        self._language_cache: dict[str, tuple[torch.Tensor, tuple]] = {}
        # True: encode every frame select_action sees, as before lazy encoding (the actions are
        # the same; for benchmarks of the old per-tick cost)
        self.encode_every_frame = False
        self.predicted_chunk = False  # whether the last select_action ran the model
        self._traced: Any = None  # TracedInference once trace_for_inference() succeeded
        self.reset()

    # -- building blocks ------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.action_queries.device

    def set_normalization(self, stats: dict[str, dict[str, Any]], instructions: list[str] | None = None) -> None:
        """Install ``{"state": {"mean", "std"}, "action": {"mean", "std"}}`` (robot units) and,
        given the training ``instructions``, the centring of their embeddings."""
        self.state_norm.set_stats(stats['state']['mean'], stats['state']['std'])
        self.action_norm.set_stats(stats['action']['mean'], stats['action']['std'])
        if instructions:
            with torch.no_grad():
                emb = self.language._encode(sorted(set(instructions))).float().cpu()
            centred = emb - emb.mean(0)
            rms = float(centred.pow(2).mean().sqrt()) if len(emb) > 1 else 0.0
            scale = rms if rms > 1e-6 else 1.0
            self.language_norm.set_stats(emb.mean(0).numpy(), np.full(emb.shape[1], scale))

    def encode_frames(self, images: torch.Tensor, joint_positions: torch.Tensor,
                      language: torch.Tensor, extra_images: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Fused per-frame tokens.

        images (B, T, H, W, 3) uint8, joint_positions (B, T, N) robot units,
        language (B, D) projected instruction embedding, extra_images {camera: (B, T, H, W, 3)}
        for every camera of ``config.extra_cameras`` -> (B, T, D); with ``config.spatial_tokens``
        (B, T, frame_tokens, D): the fused token, then each camera's map cells (or, with
        ``config.spatial_readout`` R, the R readout tokens).
        """
        B, T = images.shape[:2]  # batch, time
        cond = language.unsqueeze(1).expand(B, T, -1).reshape(B * T, -1)
        extra_images = extra_images or {}
        encoders, batches = [self.vision], [images]
        for camera in self.config.extra_cameras:
            if camera not in extra_images:
                raise ValueError(f'the policy was trained with the extra camera {camera!r} but got no '
                                 f'images for it (cameras given: {sorted(extra_images)})')
            encoders.append(self.extra_vision[camera] if camera in self.extra_vision else self.vision)
            batches.append(extra_images[camera])
        feats, cells = [], []
        for i, (encoder, frames) in enumerate(zip(encoders, batches)):
            frames = frames.reshape(B * T, *frames.shape[2:])
            if not self.spatial_cells:
                feats.append(encoder(frames, cond))
                continue
            pooled, fmap = encoder.features(frames, cond)
            feats.append(pooled)
            cells.append(self.spatial_proj[i](fmap.flatten(2).transpose(1, 2)) + self.spatial_pos[i])
        vis = self.vision_proj(torch.cat(feats, dim=-1).reshape(B, T, -1))
        state = self.state_proj(self.state_norm.normalize(joint_positions.float()))
        lang = language.unsqueeze(1).expand(B, T, -1)
        fused = self.fuse(torch.cat([vis, lang, state], dim=-1))
        if not self.spatial_cells:
            return fused
        cells = torch.cat(cells, dim=1)  # (B * T, spatial_cells, D)
        if self.config.spatial_readout:
            queries = self.readout_queries.unsqueeze(0) + cond.unsqueeze(1)  # (B * T, R, D)
            keys = self.readout_norm(cells)
            cells = queries + self.readout(queries, keys, keys, need_weights=False)[0]
        return torch.cat([fused.unsqueeze(2), cells.reshape(B, T, self.frame_tokens - 1, -1)], dim=2)

    def embed_language(self, instructions: list[str]) -> torch.Tensor:
        emb = self.language(list(instructions)).to(self.device)
        return self.language_proj(self.language_norm.normalize(emb))

    def decode(self, frame_tokens: torch.Tensor, language: torch.Tensor) -> torch.Tensor:
        """frame_tokens (B, T, D) or, with spatial tokens, (B, T, frame_tokens, D);
        language (B, D) -> normalized action chunk (B, K, A)."""
        B, T = frame_tokens.shape[:2]
        if T != self.config.n_obs_steps:
            raise ValueError(f'expected {self.config.n_obs_steps} frames of history, got {T}')
        if frame_tokens.dim() == 3:  # one token per frame
            frame_tokens = frame_tokens.unsqueeze(2)
        # every token of a frame carries the frame's position
        frame_tokens = (frame_tokens + self.frame_pos[:, None]).reshape(B, -1, frame_tokens.shape[-1])
        tokens = torch.cat([(language + self.language_type).unsqueeze(1),
                            frame_tokens,
                            self.action_queries.unsqueeze(0).expand(B, -1, -1)], dim=1)
        out = self.temporal(tokens)[:, -self.config.chunk_size:]
        return self.head(out)

    # -- training -------------------------------------------------------------------------
    def _batch_to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                for k, v in batch.items()}

    def predict_normalized(self, batch: dict[str, Any]) -> torch.Tensor:
        language = self.embed_language(batch['instruction'])
        extra = {c: batch[f'images_{c}'] for c in self.config.extra_cameras if f'images_{c}' in batch}
        frames = self.encode_frames(batch['images'], batch['joint_positions'], language, extra)
        return self.decode(frames, language)

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """Behavioural-cloning loss on a batch from :class:`vla_policy.dataset.EpisodeDataset`.

        batch: images (B, T, H, W, 3) uint8, joint_positions (B, T, N), instruction [B str],
        actions (B, K, A) robot units, action_is_pad (B, K) bool.
        """
        batch = self._batch_to_device(batch)
        pred = self.predict_normalized(batch).float()
        actions = batch['actions'].float()
        target = self.action_norm.normalize(actions)
        valid = (~batch['action_is_pad']).unsqueeze(-1).to(pred.dtype)  # (B, K, 1)
        binary = self.binary_mask.to(pred.dtype)  # (A,): 1 where the head's output is a logit
        regressed = valid * (1.0 - binary)
        denom = (valid.sum() * pred.shape[-1]).clamp(min=1.0)
        l1 = (F.l1_loss(pred, target, reduction='none') * regressed).sum() / denom
        mse = (F.mse_loss(pred, target, reduction='none') * regressed).sum() / denom
        loss = l1 if self.config.loss == 'l1' else mse
        metrics = {'l1': float(l1.detach()), 'mse': float(mse.detach())}
        if bool(self.binary_mask.any()):
            high = (actions > (self.binary_low + self.binary_high) / 2).to(pred.dtype)
            bce = (F.binary_cross_entropy_with_logits(pred, high, reduction='none') * valid * binary).sum() / denom
            loss = loss + bce
            weight = (valid * binary).sum().clamp(min=1.0)
            metrics['binary_accuracy'] = float((((pred > 0).to(pred.dtype) == high).to(pred.dtype)
                                                * valid * binary).sum() / weight)
        return loss, metrics

    def to_actions(self, pred: torch.Tensor) -> torch.Tensor:
        """The model's normalized output (..., A) -> actions in robot units: unnormalized, and a
        two-valued dimension's logit turned into the level on its side."""
        actions = self.action_norm.unnormalize(pred)
        if not bool(self.binary_mask.any()):
            return actions
        return torch.where(self.binary_mask, torch.where(pred > 0, self.binary_high, self.binary_low), actions)

    @torch.no_grad()
    def predict_action_chunk(self, batch: dict[str, Any]) -> torch.Tensor:
        """(B, K, A) actions in robot units for a batch shaped as in :meth:`forward`."""
        was_training = self.training
        self.eval()
        try:
            pred = self.predict_normalized(self._batch_to_device(batch))
        finally:
            self.train(was_training)
        return self.to_actions(pred.float())

    # -- checkpoints ----------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, metadata: dict[str, Any] | None = None,
                        state_dict: dict[str, torch.Tensor] | None = None) -> Path:
        """Write a self-contained checkpoint directory (atomically replaced if it exists).

        ``state_dict`` overrides the weights written (e.g. the EMA weights).
        """
        from safetensors.torch import save_file
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f'.{directory.name}.tmp-', dir=directory.parent))
        try:
            weights = state_dict if state_dict is not None else self.state_dict()
            save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, str(tmp / MODEL_FILE),
                      metadata={'format': 'pt'})
            self.config.save(tmp / CONFIG_FILE)
            self.language.save_tokenizer(tmp / TOKENIZER_DIR)
            (tmp / METADATA_FILE).write_text(json.dumps(metadata or {}, indent=2, default=str) + '\n')
            _replace_dir(tmp, directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = 'cpu') -> VLAPolicy:
        """Load a checkpoint written by :meth:`save_pretrained` (or a training run directory
        holding one in ``checkpoint/``) in eval mode."""
        from safetensors.torch import load_file
        directory = resolve_checkpoint(directory)
        config = VLAConfig.load(directory / CONFIG_FILE)
        tok = directory / TOKENIZER_DIR
        policy = cls(config, load_pretrained=False, tokenizer_dir=tok if tok.is_dir() else None)
        try:
            weights = load_file(str(directory / MODEL_FILE))
        except Exception as exc:  # safetensors raises its own error types for corrupt files
            raise CheckpointError(f'cannot read weights {directory / MODEL_FILE}: {exc}') from exc
        missing, unexpected = policy.load_state_dict(weights, strict=False)
        if missing or unexpected:
            raise CheckpointError(f'{directory / MODEL_FILE} does not match its config.json: missing {missing[:5]}, '
                                  f'unexpected {unexpected[:5]}')
        policy.metadata = read_metadata(directory)
        return policy.to(device).eval()


def _replace_dir(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``, replacing an existing ``dst`` with no moment without a valid copy
    of either under ``dst``'s name longer than two renames."""
    if dst.exists():
        old = dst.with_name(f'.{dst.name}.old-{os.getpid()}')
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dst)
