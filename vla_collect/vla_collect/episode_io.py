"""HDF5 demonstration episodes: the public names of the episode modules in one place.

Other packages, the tests and the benchmarks import from here; the code lives in
:mod:`vla_collect.episode_schema` (layout, file names, directory listings, validation),
:mod:`vla_collect.episode_writer` (the streaming writer), :mod:`vla_collect.episode_reader`
(the lazy reader and the directory loaders) and :mod:`vla_collect.episode_recovery` (salvaging
an interrupted recording).  No ROS import in any of them.
"""
from vla_collect.episode_reader import Episode, iter_episodes, load_valid_episodes, open_episode
from vla_collect.episode_recovery import recover_episode
from vla_collect.episode_schema import (ACTIONS, EPISODE_PATTERN, IMAGES, JOINT_POSITIONS,
                                        JOINT_VELOCITIES, REQUIRED_ATTRS, SCHEMA_VERSION,
                                        TIMESTAMPS, TMP_SUFFIX, EpisodeFormatError,
                                        EpisodeWriteError, camera_dataset, episode_number,
                                        list_episodes, list_interrupted, next_episode_path,
                                        temp_path_for, validate_episode)
from vla_collect.episode_writer import DEFAULT_MIN_FREE_BYTES, EpisodeWriter

__all__ = [
    'ACTIONS', 'DEFAULT_MIN_FREE_BYTES', 'EPISODE_PATTERN', 'IMAGES', 'JOINT_POSITIONS',
    'JOINT_VELOCITIES', 'REQUIRED_ATTRS', 'SCHEMA_VERSION', 'TIMESTAMPS', 'TMP_SUFFIX', 'Episode',
    'EpisodeFormatError', 'EpisodeWriteError', 'EpisodeWriter', 'camera_dataset', 'episode_number',
    'iter_episodes', 'list_episodes', 'list_interrupted', 'load_valid_episodes',
    'next_episode_path', 'open_episode', 'recover_episode', 'temp_path_for', 'validate_episode',
]
