"""The Vision-Language-Action model (VLAPolicy), behavioural-cloning training and offline evaluation.

ROS-free: ``from vla_policy import VLAPolicy, VLAConfig``.
"""
from vla_policy.config import VLAConfig, preset
from vla_policy.policy import CheckpointError, IncompatibleCheckpoint, VLAPolicy

__all__ = ['CheckpointError', 'IncompatibleCheckpoint', 'VLAConfig', 'VLAPolicy', 'preset']
