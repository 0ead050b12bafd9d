"""``vla_controller``'s parameters: name, default and meaning (what ``ros2 param describe
/vla_controller NAME`` shows).  ``vla_bringup/config/controller.yaml`` sets them for the
bring-up; joint names, bounds and speed limits come from ``robot.yaml``, which is also where
their defaults come from (:mod:`vla_common.robot`, the same defaults in every node).  All but
``encode_every_tick`` are read at start-up (``checkpoint`` and what shapes the policy at
``configure``)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vla_common.parameters import robot_default

#: (name, default, description); a default of None: the robot description's (see :func:`per_joint`)
PARAMETERS: tuple[tuple[str, Any, str], ...] = (
    ('checkpoint', '', 'checkpoint directory (or a training run directory holding checkpoint/); '
     'loaded and checked at configure'),
    ('device', 'cpu', 'torch device: cpu, cuda, cuda:1'),
    ('num_threads', 1, 'torch CPU threads for inference'),
    ('control_rate', 30.0, 'Hz of the control loop (node clock: sim time with use_sim_time)'),
    ('action_execution', 'checkpoint', 'checkpoint (as trained), ensemble (temporal ensembling) '
     'or queue (action chunks)'),
    ('max_observation_age', 0.25, 's: hold when the newest image or joint state is older'),
    ('command_settle_time', 0.3, 's: hold after a new command (or an e-stop reset) before acting'),
    ('strict_image_size', True, 'true: an image size other than the training data\'s is an '
     'error; false: resize'),
    ('record_dir', '', 'directory for an HDF5 episode per command (observations and predicted '
     'actions); \'\' = off'),
    ('command', '', 'initial language command (\'\' = wait for one on /voice_command)'),
    ('joint_names', None, 'the joints commanded, in the order of the policy\'s actions'),
    ('joint_lower', None, 'rad (m for a gripper): lower bound per joint'),
    ('joint_upper', None, 'rad (m for a gripper): upper bound per joint'),
    ('max_velocity', None, 'rad/s (m/s): the most one tick may move each joint'),
    ('lockstep', False, 'lock-step simulation: act once per simulated tick, when that tick\'s '
     'images and joint state (one header stamp) have all arrived and the node clock has reached '
     'it, and answer every tick (a hold re-sends its target), instead of on a timer; read at '
     'start-up'),
    ('inference', 'sync', 'sync: the tick runs the model when its action queue is empty (the '
     'robot waits for it); async: a worker thread predicts chunks on the newest observation '
     'beside the tick, joined to the plan by `stitching`'),
    ('stitching', 'crossfade', 'async: queue | latency | crossfade | ensemble '
     '(vla_control.chunking)'),
    ('max_acceleration', [0.0], 'rad/s^2 (m/s^2 for a gripper), one value for every joint or one '
     'per joint: the commanded targets follow the policy\'s within this acceleration (Ruckig '
     'online trajectory generation, vla_control.smoothing), so chunk handovers and noisy actions '
     'change the commanded velocity by at most this x one tick; 0 = off (speed limit only)'),
    ('max_chunk_age', 1.0, 'async: s; a chunk computed from an older observation is discarded'),
    ('injected_latency', 0.0, 'async, tests and benchmarks: s of extra delay per inference'),
    ('latency_spike', 0.0, 'async, tests and benchmarks: s more on every '
     'latency_spike_every-th inference'),
    ('latency_spike_every', 0, 'async, tests and benchmarks: every how many inferences a '
     'latency_spike comes (0 = never)'),
    ('plan_points', 0, 'async: the plan\'s next N actions follow each command as points one '
     'tick apart (time_from_start 2, 3, ... ticks), so a ros2_control joint_trajectory_controller '
     'interpolates between ticks and a late tick finds the path going on; 0 = one point'),
    ('kinematics_model', '', 'checkpoints of end-effector actions (vla train --action-space '
     'ee_delta): MJCF of the arm whose IK turns them into joint targets (its arm joints are the '
     'robot\'s joint_names but the last, the gripper); \'\' = the simulated arm\'s (vla_sim)'),
    ('kinematics_site', 'tcp', 'end-effector checkpoints: the site of kinematics_model the '
     'actions move (the tool-centre point)'),
    ('encode_every_tick', False, 'benchmarks: encode every frame, also on ticks served from the '
     'action queue (the cost before lazy encoding; the actions are the same). Settable at run '
     'time'),
    ('autostart', True, 'configure and activate at start-up (as `vla deploy` and ros2 launch '
     'expect); false: stay unconfigured, holding, until `ros2 lifecycle set /vla_controller '
     'configure` and `activate`'),
)


def per_joint(name: str, joint_names: Sequence[str] | None) -> Any:
    """The default of a robot parameter (``joint_names``; ``joint_lower``, ``joint_upper``,
    ``max_velocity`` for the node's ``joint_names``): the robot description's values
    (``robot.yaml``), as every node's; none (the value must be given) for a joint it lacks."""
    return robot_default(name, None if name == 'joint_names' else joint_names)


#: the parameters that apply at once when set at run time (the rest are read at start-up)
RUNTIME_SETTABLE = ('encode_every_tick', 'use_sim_time')


def refused_change(names: Sequence[str]) -> str:
    """Why setting parameters ``names`` at run time is refused ('' = it is not): all but
    :data:`RUNTIME_SETTABLE` are read at start-up, so a change is refused with the reason
    rather than silently ignored."""
    for name in names:
        if name not in RUNTIME_SETTABLE:
            return f'{name} is read at start-up: restart vla_controller to change it'
    return ''
