"""Joystick buttons as rising edges (a held button acts once); the joystick teleop and the
collector's start/stop/discard buttons use it.  No ROS import here.
"""
from __future__ import annotations

from collections.abc import Sequence


class ButtonEdges:
    """Rising edges of joystick buttons: a held button acts once."""

    def __init__(self) -> None:
        self._previous: list[int] = []

    def pressed(self, buttons: Sequence[int]) -> set[int]:
        now = [int(b) for b in buttons]
        prev = self._previous + [0] * max(0, len(now) - len(self._previous))
        self._previous = now
        return {i for i, b in enumerate(now) if b and not prev[i]}
