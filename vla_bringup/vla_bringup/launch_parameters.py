"""Launch-time parameter values that win over the nodes' YAML sections, on every path.

rcl merges every parameter source of a node (``--params-file`` files and ``-p`` overrides, in
command-line order) into one table of *node entries* keyed by node name (``/**``,
``/vla_controller``); an entry seen again in a later source is updated in place, and a node
then receives the entries that match its name **in the order the entries were first seen**.
A launch-time dict that launch_ros writes under the wildcard ``/**`` therefore loses to a
node-specific section of an earlier file (``vla_controller: checkpoint: ''`` in
``controller.yaml`` beat ``checkpoint:=DIR``).  Writing the launch-time values under the
node's own name, in a file given after the YAML files, makes them win, as the ``vla``
runner's ``-p <node>:<key>:=<value>`` does.

:func:`resolve_parameters` computes what a node receives the way rcl resolves it, so the
tests check both paths without launch_ros.  No rclpy or launch import here.
"""
from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from vla_common.launching import NodeSpec

#: a parameter source: {node entry name: {parameter: value}}, as in a params file
Source = Mapping[str, Mapping[str, Any]]


def entry_name(key: str) -> str:
    """A node entry's name as rcl stores it: absolute (``vla_controller`` -> ``/vla_controller``)."""
    return key if key.startswith('/') else '/' + key


def _matches(pattern: str, node_fqn: str) -> bool:
    """rcl's node-name wildcards: ``**`` (any number of tokens) and ``*`` (one token)."""
    regex = re.escape(pattern).replace(r'/\*\*', '(/[^/]+)*').replace(r'\*', '[^/]+')
    return re.fullmatch(regex, node_fqn) is not None


def file_source(path: str | Path) -> dict[str, dict[str, Any]]:
    """The node entries of a ROS 2 parameters file (``<node>: ros__parameters: {...}``)."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f'{path}: a parameters file maps node names to ros__parameters, '
                         f'got {type(data).__name__}')
    return {key: dict((body or {}).get('ros__parameters') or {}) for key, body in data.items()}


def resolve_parameters(node_fqn: str, sources: Iterable[Source]) -> dict[str, Any]:
    """The parameter values node ``node_fqn`` receives from ``sources`` (in command-line order)."""
    entries: dict[str, dict[str, Any]] = {}  # insertion order = first appearance, as in rcl
    for source in sources:
        for key, params in source.items():
            entries.setdefault(entry_name(key), {}).update(params)
    values: dict[str, Any] = {}
    for name, params in entries.items():
        if _matches(name, entry_name(node_fqn)):
            values.update(params)
    return values


def override_source(spec: NodeSpec) -> dict[str, dict[str, Any]]:
    """The launch-time values of ``spec`` as a node-scoped entry (empty when there are none)."""
    return {spec.name: dict(spec.parameters)} if spec.parameters else {}


def write_override_file(spec: NodeSpec, directory: str | Path | None = None) -> Path | None:
    """Write ``spec``'s launch-time values to a node-scoped params file; None when there are none."""
    source = override_source(spec)
    if not source:
        return None
    directory = Path(directory or tempfile.mkdtemp(prefix='vla_launch_params_'))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f'{spec.name}.launch_overrides.yaml'
    body = {key: {'ros__parameters': params} for key, params in source.items()}
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def launch_parameter_files(spec: NodeSpec, directory: str | Path | None = None) -> list[str]:
    """What ``launch_ros.actions.Node(parameters=...)`` gets: the YAML files, then the overrides."""
    override = write_override_file(spec, directory)
    return [*spec.param_files, *([str(override)] if override else [])]


def runner_sources(spec: NodeSpec) -> list[Source]:
    """The sources the ``vla`` runner's command line gives rcl (``--params-file``, then ``-p``)."""
    return [*(file_source(p) for p in spec.param_files), override_source(spec)]
