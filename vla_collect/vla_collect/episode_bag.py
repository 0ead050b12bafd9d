"""The raw topics of one episode as a rosbag2 directory (MCAP by default) beside its HDF5 file.

With ``record_bag: true`` the recorder keeps what it subscribed, message for message, in
``episode_NNNNNN.bag/`` next to ``episode_NNNNNN.hdf5``: a user keeps the raw data and can
re-cut or re-sample it later (``vla dataset import --format rosbag``, which reads this
directory as it reads any rosbag2 recording).  No ROS import: messages arrive already
serialized (CDR bytes, e.g. from ``rclpy.serialization.serialize_message``) with their ROS type
name; the writer is ``rosbags`` (pure Python, no ROS install needed).

The bag is written inside ``episode_NNNNNN.bag.tmp/`` and moved out when its episode is saved; a
discarded (or empty) episode deletes it, so a bag under a final name is always complete.  The
episode's language command and success flag go into the bag's ``custom_data`` (rosbag2
metadata) under ``vla.language_command`` and ``vla.success``.

Compression (``bag_compression``): ``zstd`` compresses an MCAP bag's chunks inside the file (the
MCAP format's own chunk compression, as ``ros2 bag record``'s MCAP plugin writes by default: the
``.mcap`` stays a self-contained file any MCAP reader opens) and a sqlite3 bag message by message
(rosbag2's ``compression_mode: message``, stated in its metadata.yaml).  ``none`` writes them
uncompressed.  Both read back through ``vla dataset import --format rosbag`` (``rosbags``
decompresses zstd and lz4 chunks); ``rosbags`` writes zstd only, so lz4 is not offered.
``zstd`` is the default: on the simulated pick (two 224x224 cameras at 30 Hz) it shrinks the
MCAP bag from 518 to 14 MB per minute for ~7 ms more writer CPU per second of episode
(``benchmarks/bench_bag_compression.py``); real camera images compress far less.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from vla_collect.episode_schema import TMP_SUFFIX

#: storage plugins by the name the ``bag_storage`` parameter takes
STORAGES = ('mcap', 'sqlite3')
#: compressions by the name the ``bag_compression`` parameter takes
COMPRESSIONS = ('none', 'zstd')
BAG_SUFFIX = '.bag'


class EpisodeBagError(RuntimeError):
    """The bag could not be written (disk, permissions, an unknown message type)."""


def bag_path_for(episode: str | Path) -> Path:
    """``episode_000012.bag`` beside ``episode_000012.hdf5``."""
    episode = Path(episode)
    return episode.with_name(episode.name.split('.')[0] + BAG_SUFFIX)


class EpisodeBag:
    """One episode's raw messages: :meth:`write` each, then :meth:`close` or :meth:`abort`."""

    def __init__(self, episode: str | Path, storage: str = 'mcap', compression: str = 'zstd') -> None:
        if storage not in STORAGES:
            raise ValueError(f'bag storage must be one of {STORAGES}, got {storage!r}')
        if compression not in COMPRESSIONS:
            raise ValueError(f'bag compression must be one of {COMPRESSIONS}, got {compression!r}')
        self.path = bag_path_for(episode)
        self.temp = self.path.with_name(self.path.name + TMP_SUFFIX)
        self.storage = storage
        self.compression = compression
        self.messages = 0
        self._writer = None
        self._connections: dict[str, object] = {}

    def _open(self):
        from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
        if self.path.exists():
            raise EpisodeBagError(f'{self.path} exists already; not overwriting a recording')
        if self.temp.exists():  # left by a crash: it was never a finished bag
            shutil.rmtree(self.temp)
        plugin = StoragePlugin.MCAP if self.storage == 'mcap' else StoragePlugin.SQLITE3
        self.temp.mkdir(parents=True)
        # written as <temp>/episode_NNNNNN.bag, so its storage file is named after the final bag
        writer = Writer(self.temp / self.path.name, version=9, storage_plugin=plugin)
        if self.compression == 'zstd':  # MCAP: its chunks; sqlite3: each message (rosbag2's)
            writer.set_compression(CompressionMode.STORAGE if self.storage == 'mcap'
                                   else CompressionMode.MESSAGE, CompressionFormat.ZSTD)
        try:
            writer.open()
        except Exception as exc:
            raise EpisodeBagError(f'cannot open the bag {self.temp}: {exc}') from exc
        return writer

    def write(self, topic: str, msgtype: str, time_ns: int, data: bytes) -> None:
        """One serialized (CDR) message of ``msgtype`` (e.g. ``sensor_msgs/msg/Image``) received
        at ``time_ns`` (node clock, ns)."""
        if self._writer is None:
            self._writer = self._open()
        connection = self._connections.get(topic)
        if connection is None:
            from rosbags.typesys import Stores, get_typestore
            try:
                connection = self._writer.add_connection(
                    topic, msgtype, typestore=get_typestore(Stores.LATEST))
            except Exception as exc:
                raise EpisodeBagError(f'cannot record {topic} ({msgtype}) in {self.temp}: '
                                      f'{exc}') from exc
            self._connections[topic] = connection
        try:
            self._writer.write(connection, int(time_ns), bytes(data))
        except Exception as exc:
            raise EpisodeBagError(f'writing {topic} to {self.temp} failed: {exc}') from exc
        self.messages += 1

    def close(self, language_command: str, success: bool) -> Path | None:
        """Finish the bag and give it its final name (None when nothing was written)."""
        if self._writer is None:
            return None
        try:
            self._writer.set_custom_data('vla.language_command', str(language_command))
            self._writer.set_custom_data('vla.success', 'true' if success else 'false')
            self._writer.close()
        except Exception as exc:
            self.abort()
            raise EpisodeBagError(f'closing the bag {self.temp} failed: {exc}') from exc
        self._writer = None
        os.replace(self.temp / self.path.name, self.path)
        shutil.rmtree(self.temp, ignore_errors=True)
        return self.path

    def abort(self) -> None:
        """Drop the bag (a discarded or unsaved episode)."""
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # noqa: BLE001 - it is deleted below anyway
                pass
            self._writer = None
        shutil.rmtree(self.temp, ignore_errors=True)
