"""The safety heartbeat: the monitor's state, restated at a fixed rate (no ROS import).

The safety monitor publishes one :class:`Heartbeat` as JSON in a ``std_msgs/String`` on
``/safety/heartbeat`` every ``1 / heartbeat_rate`` s and at once on every change.  The command
gate follows one monitor *session* (a random id drawn when the monitor starts) and

* holds and latches when no heartbeat arrives for ``heartbeat_timeout`` (monitor dead, hung or
  disconnected), when the session changes (a restarted or a second monitor) or when a
  heartbeat says ``stopped``;
* un-latches only on a heartbeat of its session that says not stopped with a ``resets`` count
  above the one it latched at, i.e. after a successful call of ``/emergency_stop/reset``;
* asks the monitor to latch a stop it latched on its own (``/safety/stop_request``, JSON with
  the session and ``resets`` it saw, so a request still in flight after a reset is ignored).

A bare ``''`` on ``/emergency_stop`` (the latched, human-readable state kept for
compatibility) clears nothing.  See docs/safety.md.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass

#: topic of the heartbeat (std_msgs/String, JSON) and of the gate's stop requests to the monitor
HEARTBEAT_TOPIC = '/safety/heartbeat'
STOP_REQUEST_TOPIC = '/safety/stop_request'
PROTOCOL = 1


class HeartbeatError(ValueError):
    """A heartbeat message that is not valid JSON of this protocol; names what is wrong."""


def new_session() -> str:
    """A fresh session id for a monitor that just started."""
    return uuid.uuid4().hex[:12]


@dataclass(frozen=True)
class Heartbeat:
    """One restatement of the monitor's state."""

    session: str  # random per monitor start: a change means the monitor restarted
    seq: int  # increases by one per heartbeat of a session: a repeat or an older one is ignored
    stopped: bool  # an emergency stop is latched in the monitor
    reason: str  # why ('' when not stopped)
    resets: int  # successful /emergency_stop/reset calls in this session
    # the monitor has a usable joint state (False until its first one: a monitor that has
    # never seen the robot cannot see a violation, so the gate forwards nothing); optional in
    # the JSON, absent reads as True (monitors before this field)
    watching: bool = True

    def to_json(self) -> str:
        return json.dumps({'protocol': PROTOCOL, **asdict(self)}, separators=(',', ':'))

    @classmethod
    def from_json(cls, text: str) -> Heartbeat:
        """Parse and check a heartbeat; raises :class:`HeartbeatError` naming the bad field."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise HeartbeatError(f'heartbeat is not JSON ({exc}): {text[:80]!r}') from None
        if not isinstance(data, dict) or data.get('protocol') != PROTOCOL:
            raise HeartbeatError(f'heartbeat must be a JSON object with protocol {PROTOCOL}, '
                                 f'got {text[:80]!r}')
        types = {'session': str, 'seq': int, 'stopped': bool, 'reason': str, 'resets': int}
        for key, kind in types.items():
            value = data.get(key)
            # bool is an int in Python: refuse True as a sequence number and 1 as a flag
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise HeartbeatError(f'heartbeat field {key!r} must be {kind.__name__}, '
                                     f'got {value!r}')
        if not data['session'] or data['seq'] < 0 or data['resets'] < 0:
            raise HeartbeatError(f'heartbeat needs a session id and seq, resets >= 0, got {data}')
        watching = data.get('watching', True)
        if not isinstance(watching, bool):
            raise HeartbeatError(f"heartbeat field 'watching' must be bool, got {watching!r}")
        return cls(**{key: data[key] for key in types}, watching=watching)


def stop_request(reason: str, session: str | None, resets: int | None) -> str:
    """A stop request of the gate for the monitor of ``session`` at its ``resets`` count."""
    return json.dumps({'protocol': PROTOCOL, 'reason': reason, 'session': session or '',
                       'resets': -1 if resets is None else int(resets)}, separators=(',', ':'))


def parse_stop_request(text: str) -> tuple[str, str | None, int | None]:
    """(reason, session, resets) of a stop request; plain text is a reason for any monitor."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return text.strip(), None, None
    if not isinstance(data, dict) or data.get('protocol') != PROTOCOL:
        return text.strip(), None, None
    resets = data.get('resets')
    return (str(data.get('reason', '')).strip() or 'stop requested', data.get('session') or None,
            resets if isinstance(resets, int) and resets >= 0 else None)
