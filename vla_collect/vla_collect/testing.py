"""Small source files in other ecosystems' formats, written by those ecosystems' own writers, for
the importers' tests here and in other packages (``vla_bringup`` trains on what they import).

- :func:`write_aloha_file`: an ALOHA/ACT episode file (h5py, ALOHA's layout);
- :func:`simulated_episode` + :func:`write_bag`: a short scripted-expert episode in the simulator,
  written as a rosbag2 bag (MCAP or sqlite3, by ``rosbags``) with the topics a recorder sees;
  :data:`BAG_MAPPING` is the topic mapping that imports it.

LeRobot datasets come from ``vla dataset export --format lerobot`` (the reference reader,
``lerobot``, is an optional extra).  No ROS import here; ``rosbags`` is imported when a bag is
written.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

BAG_FPS = 30.0
#: the topic mapping (``--mapping`` YAML) that imports a bag of :func:`write_bag`
BAG_MAPPING = {'image': '/camera/image_raw', 'cameras': {'wrist': '/camera/wrist/image_raw'},
               'joint_states': '/joint_states', 'action': '/vla/command',
               'instruction': '/voice_command', 'fps': BAG_FPS}
BAG_INSTRUCTION = 'pick up the red cube'


def write_aloha_file(path: str | Path, steps: int = 12, cameras: Sequence[str] = ('top', 'left_wrist'),
                     qvel: bool = True, seed: int = 0) -> dict[str, Any]:
    """An ALOHA-layout episode (``/observations/qpos``, ``qvel``, ``images/<cam>``, ``/action``,
    14 joints, 24x32 images) of random values; returns what was written."""
    import h5py
    rng = np.random.default_rng(seed)
    data = {'qpos': rng.normal(size=(steps, 14)), 'action': rng.normal(size=(steps, 14)),
            'qvel': rng.normal(size=(steps, 14)),
            'images': {c: rng.integers(0, 256, size=(steps, 24, 32, 3), dtype=np.uint8) for c in cameras}}
    with h5py.File(path, 'w') as f:
        f.attrs['sim'] = True
        f['observations/qpos'] = data['qpos']
        if qvel:
            f['observations/qvel'] = data['qvel']
        for c, images in data['images'].items():
            f[f'observations/images/{c}'] = images
        f['action'] = data['action']
    return data


def simulated_episode(steps: int = 40, seed: int = 3, image_size: int = 32) -> list[dict]:
    """Ground truth per tick: front and wrist image, q, dq, and the expert's answer to them."""
    from vla_sim import ScriptedExpert, SimEnv
    env = SimEnv(image_size=image_size, cameras=('front', 'wrist'))
    obs = env.reset(task='pick_red', seed=seed)
    expert = ScriptedExpert(env)
    expert.reset()
    ticks = []
    for _ in range(steps):
        action = expert.act(obs)
        ticks.append({'image': obs['image'], 'image_wrist': obs['image_wrist'],
                      'q': obs['joint_positions'].copy(), 'dq': obs['joint_velocities'].copy(),
                      'action': np.asarray(action, np.float64)})
        obs, _, _, _ = env.step(action)
    return ticks


def write_bag(path: str | Path, ticks: Sequence[dict], storage: Any = None, t0: float = 100.0,
              compressed: bool = False, drop_topic: str | None = None,
              skip_ticks: Iterable[int] = ()) -> Path:
    """The topics a recorder sees, stamped like a live graph: the frame and joint state of tick k
    at t0 + k/fps, the command that answers them 5 ms later.  ``storage``: a
    ``rosbags.rosbag2.StoragePlugin`` (default MCAP)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    from vla_sim import JOINT_NAMES
    ts = get_typestore(Stores.ROS2_JAZZY)
    T = ts.types
    skip_ticks = set(skip_ticks)

    def header(t):
        sec = int(t)
        return T['std_msgs/msg/Header'](stamp=T['builtin_interfaces/msg/Time'](
            sec=sec, nanosec=int(round((t - sec) * 1e9))), frame_id='')

    def image(rgb, t):
        if compressed:
            import cv2
            ok, png = cv2.imencode('.png', np.ascontiguousarray(rgb[..., ::-1]))
            return T['sensor_msgs/msg/CompressedImage'](header=header(t), format='png',
                                                        data=png.reshape(-1))
        return T['sensor_msgs/msg/Image'](header=header(t), height=rgb.shape[0], width=rgb.shape[1],
                                          encoding='rgb8', is_bigendian=0, step=rgb.shape[1] * 3,
                                          data=np.ascontiguousarray(rgb).reshape(-1))

    def trajectory(action, t):
        point = T['trajectory_msgs/msg/JointTrajectoryPoint'](
            positions=np.asarray(action, np.float64), velocities=np.zeros(0), accelerations=np.zeros(0),
            effort=np.zeros(0), time_from_start=T['builtin_interfaces/msg/Duration'](sec=0, nanosec=33_333_333))
        return T['trajectory_msgs/msg/JointTrajectory'](header=header(t), joint_names=list(JOINT_NAMES),
                                                        points=[point])

    path = Path(path)
    image_type = 'sensor_msgs/msg/CompressedImage' if compressed else 'sensor_msgs/msg/Image'
    topics = {'/camera/image_raw': image_type, '/camera/wrist/image_raw': image_type,
              '/joint_states': 'sensor_msgs/msg/JointState',
              '/vla/command': 'trajectory_msgs/msg/JointTrajectory',
              '/voice_command': 'std_msgs/msg/String'}
    with Writer(path, version=9, storage_plugin=storage or StoragePlugin.MCAP) as writer:
        conns = {topic: writer.add_connection(topic, msgtype, typestore=ts)
                 for topic, msgtype in topics.items() if topic != drop_topic}

        def put(topic, msg, t):
            if topic in conns:
                writer.write(conns[topic], int(round(t * 1e9)), ts.serialize_cdr(msg, topics[topic]))

        put('/voice_command', T['std_msgs/msg/String'](data=BAG_INSTRUCTION), t0 - 0.5)
        for k, tick in enumerate(ticks):
            if k in skip_ticks:
                continue
            t = t0 + k / BAG_FPS
            put('/camera/image_raw', image(tick['image'], t), t)
            put('/camera/wrist/image_raw', image(tick['image_wrist'], t), t)
            put('/joint_states', T['sensor_msgs/msg/JointState'](
                header=header(t), name=list(JOINT_NAMES), position=np.asarray(tick['q'], np.float64),
                velocity=np.asarray(tick['dq'], np.float64), effort=np.zeros(0)), t)
            put('/vla/command', trajectory(tick['action'], t + 0.005), t + 0.005)
    return path
