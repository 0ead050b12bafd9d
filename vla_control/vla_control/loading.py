"""Loading the controller's policy from a checkpoint, without ROS: the checks before it may
command the robot (it fits the robot's joints, the execution modes are known), the
asynchronous-inference wrapper (:mod:`vla_control.chunking`) and, for a checkpoint of
end-effector actions, the converter to joint targets (:mod:`vla_control.ee_actions`)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from vla_control.ee_actions import EE_ACTION_NAMES, EEActionConverter, is_ee_checkpoint

Log = Callable[[str, str], None]  # (level 'info' | 'warning' | 'error', line)


@dataclass(frozen=True)
class PolicySettings:
    """The controller parameters the policy is built from (see ``controller_node``)."""

    checkpoint: str
    device: str = 'cpu'
    num_threads: int = 1
    action_execution: str = 'checkpoint'  # checkpoint | ensemble | queue
    inference: str = 'sync'  # sync | async
    stitching: str = 'crossfade'
    max_chunk_age: float = 1.0
    injected_latency: float = 0.0
    latency_spike: float = 0.0
    latency_spike_every: int = 0
    traced: bool = True  # predictions through frozen TorchScript graphs (vla_policy.traced)
    plan_points: int = 0  # upcoming plan actions published after each command
    kinematics_model: str = ''  # end-effector checkpoints: the arm's MJCF ('' = the simulated arm's)
    kinematics_site: str = 'tcp'  # end-effector checkpoints: the tool site of kinematics_model

    @classmethod
    def from_parameters(cls, value: Callable[[str], Any]) -> PolicySettings:
        """The settings from the controller's parameters (``value(name)``: a parameter's value,
        see :mod:`vla_control.parameters`)."""
        return cls(str(value('checkpoint')), str(value('device')),
                   max(1, int(value('num_threads'))), str(value('action_execution')),
                   str(value('inference')), str(value('stitching')),
                   float(value('max_chunk_age')), float(value('injected_latency')),
                   float(value('latency_spike')), int(value('latency_spike_every')),
                   plan_points=int(value('plan_points')),
                   kinematics_model=str(value('kinematics_model')),
                   kinematics_site=str(value('kinematics_site')))


def load_policy(settings: PolicySettings, joint_names: Sequence[str], period: float,
                clock: Callable[[], float], log: Log) -> tuple[Any, Any]:
    """The checkpoint's policy, checked against ``joint_names`` and ready for ticks of
    ``period`` s (``clock``: the node clock, for asynchronous inference), and the
    :class:`~vla_control.ee_actions.EEActionConverter` that turns its actions into joint targets
    when it outputs end-effector deltas (else None).  Raises on any problem: no checkpoint, one
    that does not load or does not fit (its joints, or the kinematics model's), an unknown mode."""
    path = settings.checkpoint
    if not path:
        raise ValueError('no checkpoint given: set the `checkpoint` parameter '
                         '(ros2 launch vla_bringup deploy.launch.py checkpoint:=DIR)')
    import torch

    from vla_policy import VLAPolicy
    torch.set_num_threads(settings.num_threads)  # loading; the worker sets its own too
    policy = VLAPolicy.from_pretrained(path, device=settings.device)
    names = list(joint_names)
    ee = is_ee_checkpoint(policy.config.action_names)
    actions = list(EE_ACTION_NAMES) if ee else names
    policy.check_compatible(joint_names=names, action_dim=len(actions), action_names=actions)
    # end-effector deltas: the arm's kinematics (vla_sim, mujoco: imported only here)
    converter = (EEActionConverter.for_robot(names, settings.kinematics_model, settings.kinematics_site)
                 if ee else None)
    mode = settings.action_execution
    if mode not in ('checkpoint', 'ensemble', 'queue'):
        raise ValueError(f'action_execution must be checkpoint, ensemble or queue, got {mode!r}')
    if mode != 'checkpoint':
        policy.config.temporal_ensemble = mode == 'ensemble'
    policy.reset()
    eager = policy.trace_for_inference() if settings.traced else 'eager by request'
    policy = _maybe_async(policy, settings, len(actions), period, clock, log)
    if settings.plan_points > 0 and not hasattr(policy, 'upcoming'):
        log('warning', f'plan_points {settings.plan_points}: this policy does not expose its plan: '
            'one point per command; set inference: async')
    elif settings.plan_points > 0 and policy.config.temporal_ensemble and settings.inference != 'async':
        log('warning', f'plan_points {settings.plan_points}: temporal ensembling decides each action '
            'at its tick, so there is no plan ahead: one point per command; use action_execution: '
            'queue or inference: async')
    cfg = policy.config
    log('info', f'loaded {path} ({cfg.preset}, {cfg.vision_encoder} vision, image {cfg.image_size} '
        f'px, {"temporal ensemble" if cfg.temporal_ensemble else "action queue"}, chunk '
        f'{cfg.chunk_size}, {"traced" if not eager else eager}) for {names} at {1 / period:g} Hz')
    if converter is not None:
        log('info', f'end-effector actions {list(EE_ACTION_NAMES)}: joint targets by IK on '
            f'{settings.kinematics_model or "the simulated arm"} (tool site '
            f'{settings.kinematics_site!r}), the commanded pose anchored at the measured joints '
            'whenever the controller starts acting')
    return policy, converter


def _maybe_async(policy: Any, settings: PolicySettings, action_dim: int, period: float,
                 clock: Callable[[], float], log: Log) -> Any:
    """``inference: async``: the policy behind an inference thread and a chunk stitcher."""
    mode = settings.inference
    if mode == 'sync':
        return policy
    if mode != 'async':
        raise ValueError(f'inference must be sync or async, got {mode!r}')
    from vla_control.async_policy import AsyncPolicy
    from vla_control.chunking import ChunkStitcher, LatencyModel
    cfg = policy.config
    stitcher = ChunkStitcher(settings.stitching, period, action_dim, max_age=settings.max_chunk_age,
                             decay=cfg.ensemble_decay, n_action_steps=cfg.n_action_steps)
    latency = LatencyModel(settings.injected_latency, settings.latency_spike,
                           settings.latency_spike_every)
    threads = settings.num_threads

    def start_thread() -> None:
        import torch
        torch.set_num_threads(threads)
    log('info', f'asynchronous inference: {stitcher.mode} stitching, chunks older than '
        f'{stitcher.max_age:g} s discarded'
        + (f', {latency.base * 1e3:g} ms injected latency' if latency.base else ''))
    return AsyncPolicy(policy, stitcher, clock, latency, on_start=start_thread)
