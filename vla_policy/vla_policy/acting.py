"""How a :class:`~vla_policy.policy.VLAPolicy` acts on a robot, one observation at a time.

``ActingMixin`` holds the deployment half of the policy: checking an observation, the frame
history (one fused token per frame), the cached instruction embeddings, the action queue and
ACT's temporal ensemble, traced inference, and the check that a checkpoint fits a robot. It
needs the model half (``config``, ``device``, ``encode_frames``, ``decode``, ``embed_language``,
``to_actions``, the language modules), which ``VLAPolicy`` provides; it comes first among the
bases so its ``train``/``load_state_dict``/``_apply`` drop the traced graphs before
``nn.Module`` changes the weights.
"""
from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import torch

from vla_policy.checkpoint_files import IncompatibleCheckpoint
from vla_policy.images import prepare_image


class ActingMixin:
    """select_action / predict_chunk / reset / check_compatible of a VLAPolicy."""

    # -- deployment -----------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the frame history and queued actions (call before every episode/command,
        and whenever the robot held: a stall makes both stale).  The instruction embeddings
        stay cached."""
        self._history: deque[torch.Tensor] = deque(maxlen=self.config.n_obs_steps)
        self._queue: deque[np.ndarray] = deque()
        self._ensemble: list[list[Any]] = []  # [chunk (K, A) ndarray, age]
        self._instruction: str | None = None
        self._language: torch.Tensor | None = None

    def _validate_obs(self, obs: dict[str, Any]) -> tuple[np.ndarray, str]:
        """Check every key of ``obs`` (cheaply: images are resized only when encoded) and
        return the joint positions (N,) float32 and the instruction."""
        needed = ['image', *(f'image_{c}' for c in self.config.extra_cameras), 'joint_positions', 'instruction']
        missing = [k for k in needed if k not in obs]
        if missing:
            raise ValueError(f'observation is missing {missing}; expected keys {", ".join(needed)}')
        for key in needed[:-2]:
            image = np.asarray(obs[key])
            if image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f'{key} must be an (H, W, 3) RGB array, got shape {np.shape(image)}')
            if image.dtype != np.uint8:
                raise ValueError(f'{key} must be uint8 (0..255), got dtype {image.dtype}')
        q = np.asarray(obs['joint_positions'], dtype=np.float32).reshape(-1)
        if q.shape != (self.config.state_dim,):
            raise ValueError(f'joint_positions has {q.shape[0]} values, the policy was trained on '
                             f'{self.config.state_dim} ({self.config.joint_names})')
        if not np.all(np.isfinite(q)):
            raise ValueError(f'joint_positions contains non-finite values: {q.tolist()}')
        text = obs['instruction']
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f'instruction must be a non-empty string, got {text!r}')
        return q, text

    def _frame_tensor(self, image: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 of any size -> (1, 1, S, S, 3) uint8 on the device, no copy beyond
        the resize (a read-only array of the model's size, e.g. a view of a ROS message, is
        copied: torch wants writable memory)."""
        image = prepare_image(image, self.config.image_size)
        if not image.flags.writeable:
            image = image.copy()
        return torch.from_numpy(image).to(self.device)[None, None]

    def _instruction_embedding(self, text: str) -> torch.Tensor:
        """The projected embedding (1, D) of ``text``, computed once per instruction and kept
        across :meth:`reset` (recomputed when the language weights or statistics change)."""
        params = (self.language_proj.weight, self.language_proj.bias, self.language_norm.mean,
                  self.language_norm.std)
        try:  # in-place updates (optimizer steps, load_state_dict, set_normalization) bump these
            version = tuple((id(t), t._version) for t in params)
        except RuntimeError:  # inference tensors have no version counter: do not cache
            return self.embed_language([text])
        cached = self._language_cache.get(text)
        if cached is not None and cached[1] == version and self.language.frozen:
            return cached[0]
        emb = self.embed_language([text])  # (1, D)
        self._language_cache[text] = (emb, version)
        return emb

    def _apply(self, fn, *args, **kwargs):
        self._language_cache.clear()  # device/dtype moves invalidate cached embeddings
        self._traced = None  # and the traced graphs, which hold the weights as constants
        return super()._apply(fn, *args, **kwargs)

    def train(self, mode: bool = True):
        if mode:
            self._traced = None  # the weights are about to change
        return super().train(mode)

    def load_state_dict(self, *args, **kwargs):
        self._traced = None
        return super().load_state_dict(*args, **kwargs)

    def trace_for_inference(self) -> str:
        """Run predictions through frozen TorchScript graphs (:mod:`vla_policy.traced`): the
        same actions with about half the CPU time per prediction of a ``cnn`` model.  Returns ''
        when traced, otherwise why the policy stays eager.  Dropped again by ``train()``,
        device moves and ``load_state_dict``."""
        if self.config.vision_encoder != 'cnn':
            return f'traced inference is for the cnn vision encoder, not {self.config.vision_encoder!r}'
        from vla_policy.traced import TracedInference
        self.eval()
        try:
            self._traced = TracedInference(self)
        except Exception as exc:  # noqa: BLE001 - eager still works; say why
            self._traced = None
            return f'tracing failed ({exc})'
        return ''

    @property
    def traced(self) -> bool:
        """Whether predictions run through the traced graphs."""
        return self._traced is not None

    def _observe(self, obs: dict[str, Any], q: np.ndarray) -> None:
        """Encode the frame of ``obs`` into the history (one fused token; with spatial tokens, also the map cells)."""
        images = self._frame_tensor(obs['image'])  # (1, 1, S, S, 3)
        state = torch.from_numpy(q).to(self.device)[None, None]  # (1, 1, N)
        extra_images = {c: self._frame_tensor(obs[f'image_{c}']) for c in self.config.extra_cameras}
        encode = self._traced.encode if self._traced is not None else self.encode_frames
        token = encode(images, state, self._language, extra_images)[:, 0]  # (1, D), or (1, frame_tokens, D)
        if not self._history:
            self._history.extend([token] * self.config.n_obs_steps)  # repeat-pad, as in training
        else:
            self._history.append(token)

    @torch.no_grad()
    def select_action(self, obs: dict[str, Any]) -> np.ndarray:
        """One action (A,) float32 in robot units for the newest observation.

        obs: image (H, W, 3) uint8 of any size, image_<camera> for each extra camera,
        joint_positions (N,), instruction str. A new instruction starts a fresh history (as
        :meth:`reset`).  The model runs only when the action queue is empty (every call with
        temporal ensembling); a frame is encoded only when it will be in the history of the
        next prediction, so the actions equal those of encoding every frame.
        """
        q = self._begin(obs)
        predict = self.config.temporal_ensemble or not self._queue
        # the next prediction happens len(queue) calls from now and looks at n_obs_steps frames
        if predict or self.encode_every_frame or len(self._queue) < self.config.n_obs_steps:
            self._observe(obs, q)
        self.predicted_chunk = predict
        if self.config.temporal_ensemble:
            return self._ensembled_action()
        if predict:
            chunk = self._predict_chunk()
            self._queue.extend(chunk[: self.config.n_action_steps])
        return self._queue.popleft()

    def upcoming(self, n: int) -> np.ndarray:
        """The next ``n`` actions (n', A) of the queue after the one :meth:`select_action` returned
        last, one tick apart (fewer when the queue ends; none with temporal ensembling, whose next
        actions are not decided yet): what a downstream trajectory controller can interpolate
        towards (the controller's ``plan_points``)."""
        queued = [] if self.config.temporal_ensemble else list(self._queue)[:max(0, int(n))]
        return np.stack(queued).astype(np.float32) if queued else np.zeros((0, self.config.action_dim), np.float32)

    @torch.no_grad()
    def predict_chunk(self, obs: dict[str, Any]) -> np.ndarray:
        """The whole chunk (K, A) float32 in robot units predicted from ``obs`` (one model run,
        no action queue): for asynchronous inference, where a stitcher decides which of its
        actions to execute.  The frame joins the history as in :meth:`select_action`."""
        q = self._begin(obs)
        self._observe(obs, q)
        self.predicted_chunk = True
        return self._predict_chunk()

    def _begin(self, obs: dict[str, Any]) -> np.ndarray:
        """Check ``obs``, switch to eval mode, and start over on a new instruction (as
        :meth:`reset`); returns the joint positions."""
        q, text = self._validate_obs(obs)
        if self.training:
            self.eval()
        if text != self._instruction:
            self.reset()
            self._instruction = text
            self._language = self._instruction_embedding(text)  # (1, D)
        return q

    def _predict_chunk(self) -> np.ndarray:
        frames = torch.stack(list(self._history), dim=1)  # (1, T, D)
        decode = self._traced.decode if self._traced is not None else self.decode
        pred = self.to_actions(decode(frames, self._language).float())
        return pred[0].cpu().numpy().astype(np.float32)  # (K, A)

    def _ensembled_action(self) -> np.ndarray:
        self._ensemble.append([self._predict_chunk(), 0])
        actions = np.stack([chunk[age] for chunk, age in self._ensemble])  # oldest first
        weights = np.exp(-self.config.ensemble_decay * np.arange(len(actions)))
        action = (weights[:, None] * actions).sum(0) / weights.sum()
        if bool(self.binary_mask.any()):  # a blend of two levels snaps to the nearer one
            mask, low, high = (t.cpu().numpy() for t in (self.binary_mask, self.binary_low, self.binary_high))
            action = np.where(mask, np.where(action > (low + high) / 2, high, low), action)
        for entry in self._ensemble:
            entry[1] += 1
        self._ensemble = [e for e in self._ensemble if e[1] < self.config.chunk_size]
        return action.astype(np.float32)

    def check_compatible(self, joint_names: list[str] | tuple[str, ...] | None = None,
                         action_dim: int | None = None, action_names: list[str] | tuple[str, ...] | None = None,
                         state_dim: int | None = None) -> None:
        """Raise :class:`IncompatibleCheckpoint` when the robot/data differs from the training data."""
        cfg = self.config
        problems = []
        if joint_names is not None and cfg.joint_names and list(joint_names) != list(cfg.joint_names):
            problems.append(f'joint names {list(joint_names)} != trained {list(cfg.joint_names)}')
        if state_dim is not None and state_dim != cfg.state_dim:
            problems.append(f'state dimension {state_dim} != trained {cfg.state_dim}')
        if joint_names is not None and len(joint_names) != cfg.state_dim:
            problems.append(f'{len(joint_names)} joints != trained state dimension {cfg.state_dim}')
        if action_dim is not None and action_dim != cfg.action_dim:
            problems.append(f'action dimension {action_dim} != trained {cfg.action_dim}')
        if action_names is not None and cfg.action_names and list(action_names) != list(cfg.action_names):
            problems.append(f'action names {list(action_names)} != trained {list(cfg.action_names)}')
        if problems:
            raise IncompatibleCheckpoint('checkpoint does not match this robot/data: ' + '; '.join(problems))
