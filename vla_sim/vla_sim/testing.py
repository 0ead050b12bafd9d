"""Test helpers shared by the vla_sim tests (and usable by others): a reduced privileged-state
proxy that offers only what a ROS-side proxy can, and a rollout of a scripted expert."""
from __future__ import annotations

from typing import Any

import numpy as np

#: the keys of privileged_state() a ROS-side proxy offers (plus the objects' pos and quat)
EXPERT_KEYS = ("task", "dt", "joint_positions", "ee_pos")


class StateProxy:
    """Offers only what a ROS-side proxy can: joint_names, dt and a reduced privileged_state()."""

    def __init__(self, env: Any) -> None:
        self.env, self.joint_names, self.dt = env, env.joint_names, env.dt

    def privileged_state(self) -> dict:
        state = self.env.privileged_state()
        reduced = {k: state[k] for k in EXPERT_KEYS}
        reduced["objects"] = {n: {"pos": o["pos"], "quat": o["quat"]} for n, o in state["objects"].items()}
        return reduced


def run_episode(env: Any, expert: Any, task: str, seed: int, reseed: bool = False) -> tuple[dict, np.ndarray]:
    """Roll ``expert`` out on ``task`` / ``seed`` until the episode ends, asserting that no action
    was clipped; returns the last info and the (T, 7) actions.  ``reseed``: reseed the expert's
    noise with the episode seed (else it keeps its own)."""
    obs = env.reset(task=task, seed=seed)
    expert.reset(seed=seed) if reseed else expert.reset()
    actions, done = [], False
    while not done:
        action = expert.act(obs)
        actions.append(action)
        obs, reward, done, info = env.step(action)
        assert not info["clipped"]
    return info, np.array(actions)
