"""The controller's inputs, without ROS: camera images decoded (:func:`decode_image`) and the
input cache, the newest image(s), joint state, command and e-stop with their arrival times,
written by the subscription callbacks and taken by the tick as one
:class:`~vla_control.runtime.Snapshot` (thread-safe)."""
from __future__ import annotations

import threading
from typing import Any

import numpy as np

from vla_control.runtime import Snapshot


def decode_image(msg: Any) -> np.ndarray:
    """A ``sensor_msgs/Image`` (or anything with its fields) as (H, W, 3) RGB; raises
    ValueError naming the fault when it is malformed.

    An unpadded rgb8 image (what cameras and the simulator send) becomes a read-only view of
    the message's buffer, no copy; other encodings are converted
    (:func:`vla_common.messages.image_to_rgb`)."""
    if msg.height == 0 or msg.width == 0:
        raise ValueError(f'image has zero size {msg.height}x{msg.width}')
    h, w = int(msg.height), int(msg.width)
    if msg.encoding == 'rgb8' and msg.step == 3 * w and len(msg.data) == 3 * w * h:
        return np.frombuffer(msg.data, dtype=np.uint8).reshape(h, w, 3)
    from vla_common.messages import image_to_rgb
    return image_to_rgb(msg)


class InputCache:
    """What ``vla_controller`` knows of the world between ticks (times: s on the node clock)."""

    def __init__(self, instruction: str = '', now: float = 0.0) -> None:
        self.lock = threading.Lock()
        self.image: np.ndarray | None = None
        self.image_time: float | None = None
        self.extra_images: dict[str, tuple[np.ndarray, float]] = {}  # camera -> (image, arrival)
        self.q: np.ndarray | None = None
        self.v: np.ndarray | None = None
        self.state_time: float | None = None
        self.instruction = instruction.strip()  # initial command, '' = wait for one
        self.command_time: float | None = now if self.instruction else None
        self.command_changed = bool(self.instruction)  # the next tick starts an episode
        self.estop = ''

    def put_image(self, image: np.ndarray, now: float, camera: str = '') -> None:
        """The main camera's newest image, or extra ``camera``'s."""
        with self.lock:
            if camera:
                self.extra_images[camera] = (image, now)
            else:
                self.image, self.image_time = image, now

    def put_joint_state(self, q: np.ndarray, v: np.ndarray | None, now: float) -> None:
        with self.lock:
            self.q, self.v, self.state_time = q, v, now

    def put_command(self, text: str, now: float) -> bool:
        """A command message: every one starts over, the same text too (an evaluator re-sends
        the instruction for each episode).  False when ignored: empty with no command."""
        text = text.strip()
        with self.lock:
            if not text and not self.instruction:
                return False
            self.instruction, self.command_time, self.command_changed = text, now, True
            return True

    def put_estop(self, reason: str, now: float) -> None:
        """The latched e-stop reason ('' = released: start over like a new command)."""
        with self.lock:
            if self.estop and not reason:
                self.command_time, self.command_changed = now, True
            self.estop = reason

    def restart_command(self) -> None:
        """The current command starts an episode again at the next tick (a new policy)."""
        with self.lock:
            self.command_changed = bool(self.instruction)

    def drop_extra_images(self) -> None:
        with self.lock:
            self.extra_images = {}

    def take(self, now: float, stamp: float | None = None, halt: str = '') -> Snapshot:
        """The tick's snapshot (``stamp``: lock-step tick, ``halt``: why the controller may
        not act whatever its inputs); a command change is handed to one tick only."""
        with self.lock:
            snap = Snapshot(now, self.instruction, self.command_time, self.command_changed,
                            self.estop, self.image, self.image_time, dict(self.extra_images),
                            self.q, self.v, self.state_time, stamp, halt)
            self.command_changed = False
        return snap
