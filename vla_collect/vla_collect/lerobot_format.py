"""LeRobotDataset v3.0 <-> this suite's HDF5 episodes: the public names in one place.

The benchmarks import from here; the code lives in :mod:`vla_collect.lerobot_meta` (the layout,
names and statistics), :mod:`vla_collect.lerobot_video` (camera video through PyAV),
:mod:`vla_collect.lerobot_export` (episodes -> dataset), :mod:`vla_collect.lerobot_reader`
(reading a dataset's tables) and :mod:`vla_collect.lerobot_import` (dataset -> episodes).
"""
from vla_collect.lerobot_export import LeRobotExporter, export_lerobot
from vla_collect.lerobot_import import import_lerobot, iter_dataset_frames
from vla_collect.lerobot_meta import (CODEBASE_VERSION, LeRobotFormatError, aggregate_stats,
                                      vector_stats)
from vla_collect.lerobot_reader import LeRobotLayout
from vla_collect.lerobot_video import VideoFileWriter, VideoFrameReader, VideoSettings, psnr

__all__ = ['CODEBASE_VERSION', 'LeRobotExporter', 'LeRobotFormatError', 'LeRobotLayout',
           'VideoFileWriter', 'VideoFrameReader', 'VideoSettings', 'aggregate_stats',
           'export_lerobot', 'import_lerobot', 'iter_dataset_frames', 'psnr', 'vector_stats']
