"""The recorder's ``episode_metadata`` parameter, without ROS: extra attributes of the next
episodes (``vla collect`` stores the simulator task and seed this way)."""
from __future__ import annotations

import json

#: attributes the recorder itself writes, which metadata may not set
RESERVED = ('language_command', 'success', 'duration', 'schema_version', 'action_ee_names',
            'action_space')


def parse_episode_metadata(text: str) -> dict:
    """Extra episode attributes from a JSON object of strings, numbers and booleans; ValueError
    (saying what is wrong) for anything else or for a key of ``RESERVED``."""
    try:
        value = json.loads(text or '{}')
    except json.JSONDecodeError as exc:
        raise ValueError(f'episode_metadata must be a JSON object, got {text!r}: {exc}') from exc
    if not isinstance(value, dict) or not all(
            isinstance(v, (str, int, float, bool)) for v in value.values()):
        raise ValueError('episode_metadata must be a JSON object of strings, numbers and '
                         f'booleans, got {text!r}')
    reserved = set(RESERVED) & set(value)
    if reserved:
        raise ValueError(f'episode_metadata may not set {sorted(reserved)}')
    return value
