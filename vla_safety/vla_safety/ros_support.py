"""What the safety nodes share on the ROS side: the heartbeat's QoS profile and the run-time
parameter callback that lets a core accept (tighten) or refuse limit changes (logging a core's
lines is :func:`vla_common.logs.emit_log`)."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from rcl_interfaces.msg import SetParametersResult
from rclpy.qos import QoSProfile, ReliabilityPolicy

#: the heartbeat: reliable, only the newest matters
HEARTBEAT_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)


def runtime_parameters(params, runtime_names: Iterable[str],
                       apply: Callable[[Mapping[str, object]], str | None],
                       logger) -> SetParametersResult:
    """Apply run-time changes of ``runtime_names`` through ``apply`` (a core's
    ``set_parameters``: returns a refusal or None); every other parameter is start-up only."""
    allowed = set(runtime_names)
    changes = {}
    for param in params:
        if param.name == 'use_sim_time':
            continue
        if param.name not in allowed:
            return SetParametersResult(successful=False,
                                       reason=f'{param.name} is read at start-up only')
        changes[param.name] = param.value
    refusal = apply(changes) if changes else None
    if refusal:
        return SetParametersResult(successful=False, reason=refusal)
    if changes:
        logger.warning(f'limits tightened: {changes}')
    return SetParametersResult(successful=True)
