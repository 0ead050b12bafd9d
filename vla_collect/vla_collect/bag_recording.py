"""``record_bag``: the collector's rosbag2 copy of each episode, episode by episode (ROS-free).

The collector node hands every raw message it subscribed to :meth:`BagRecording.write`; this
class keeps one :class:`~vla_collect.episode_bag.EpisodeBag` per recorded episode (started with
the episode, finished when it is saved, deleted with anything else) and what the status reports:
the last bag written and the last error.  A write error drops the bag of that episode only; the
HDF5 episode goes on.
"""
from __future__ import annotations

from pathlib import Path

from vla_collect.episode_bag import COMPRESSIONS, STORAGES, EpisodeBag, EpisodeBagError


class BagRecording:
    """The bag of the episode being recorded (if any), in ``storage`` ('mcap' or 'sqlite3'),
    with ``compression`` ('none' or 'zstd', see :mod:`vla_collect.episode_bag`)."""

    def __init__(self, storage: str = 'mcap', compression: str = 'zstd') -> None:
        if storage not in STORAGES:
            raise ValueError(f'bag_storage must be one of {STORAGES}, got {storage!r}')
        if compression not in COMPRESSIONS:
            raise ValueError(f'bag_compression must be one of {COMPRESSIONS}, got {compression!r}')
        self.storage = storage
        self.compression = compression
        self.bag: EpisodeBag | None = None
        self.error = ''  # the last write or close error
        self.last = ''  # the path of the last bag saved

    def start(self, episode: str | Path) -> None:
        """A new bag beside the episode file ``episode``."""
        self.bag, self.error = EpisodeBag(episode, self.storage, self.compression), ''

    def write(self, topic: str, msgtype: str, time_ns: int, data: bytes) -> str | None:
        """Add one serialized message to the current bag (none: ignored); the error that
        dropped this episode's bag, or None."""
        if self.bag is None:
            return None
        try:
            self.bag.write(topic, msgtype, time_ns, data)
        except EpisodeBagError as exc:
            self.error = str(exc)
            self.bag.abort()
            self.bag = None
            return f'{exc}: the bag of this episode is dropped (the HDF5 episode goes on)'
        return None

    def close(self, summary) -> str | None:
        """Finish the bag of a saved episode (``summary.saved``), delete it for anything else
        (``summary`` None: the episode failed); the close error, or None."""
        bag, self.bag = self.bag, None
        if bag is None:
            return None
        if summary is None or not summary.saved:
            bag.abort()
            return None
        try:
            path = bag.close(summary.language_command, summary.success)
        except EpisodeBagError as exc:
            self.error = str(exc)
            return str(exc)
        if path is not None:
            self.last = str(path)
        return None

    def status(self) -> dict:
        return {'recording': self.bag is not None, 'last': self.last,
                'messages': self.bag.messages if self.bag is not None else 0, 'error': self.error}
