"""What the simulator node reports, without ROS: the ``/sim/task_status`` JSON of every tick and
the key/value pairs of its ``/diagnostics`` status."""
from __future__ import annotations

from typing import Any

import numpy as np

from vla_sim.env import SimEnv
from vla_sim.lockstep import LockstepWaits


def tick_status(env: SimEnv, obs: dict[str, Any], *, episode: int, reward: float, success: bool,
                done: bool, stamp: float, lockstep: bool, paused: bool,
                waits: LockstepWaits) -> dict[str, Any]:
    """The ``/sim/task_status`` of the tick just published: the episode, its progress and outcome,
    the cameras published this episode (the first on ``/camera/image_raw``), the clock time of the tick (``stamp``, as in the header stamps), the lock-step record, the
    joint positions of the same tick and every object's pose (the scripted expert's input)."""
    state = env.privileged_state()
    return {
        'episode': episode, 'task': env.task.name, 'seed': env.seed,
        'instruction': env.task.instruction, 'step': env.elapsed_steps,
        'cameras': list(env.cameras),  # observed and published: /camera/image_raw, /camera/<name>/image_raw
        'sim_time': env.sim_time, 'max_steps': env.task.max_steps,
        'reward': reward, 'success': bool(success),
        'done': done,
        'stamp': stamp,
        'mode': 'lockstep' if lockstep else 'real_time',
        'paused': paused,
        'timeouts': waits.timeouts, 'silent': waits.silent, 'silent_ticks': waits.silent_ticks,
        'joint_positions': np.asarray(obs['joint_positions'], dtype=np.float64).tolist(),
        'objects': {name: {'pos': np.asarray(o['pos']).tolist(),
                           'quat': np.asarray(o['quat']).tolist()}
                    for name, o in state['objects'].items()},
    }


def diagnostic_values(env: SimEnv, *, episode: int, tick_rate: float, ticks: int, rejected: int,
                      clipped: int, stale: int, lockstep: bool, paused: bool,
                      waits: LockstepWaits, success: bool) -> tuple[tuple[str, Any], ...]:
    """The (key, value) pairs of the simulator's ``/diagnostics`` status, in their order."""
    return (
        ('task', env.task.name), ('seed', env.seed), ('episode', episode),
        ('wall_tick_rate_hz', f'{tick_rate:.2f}'), ('ticks', ticks),
        ('rejected_commands', rejected), ('clipped_commands', clipped),
        ('stale_commands', stale),
        ('mode', 'lockstep' if lockstep else 'real_time'), ('paused', paused),
        ('lockstep_timeouts', waits.timeouts),
        *((f'lockstep_silent: {t}', n) for t, n in sorted(waits.silent_counts.items())),
        ('success', bool(success)))
