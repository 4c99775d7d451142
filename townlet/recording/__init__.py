"""Episode recording: policies, the version-2 format (and a version-1 reader), the SQLite index."""

from townlet.recording.format import Episode, RecordingError, decode_episode, encode_episode
from townlet.recording.index import RecordingIndex, read_episode, reindex

__all__ = [
    "Episode",
    "RecordingError",
    "RecordingIndex",
    "decode_episode",
    "encode_episode",
    "read_episode",
    "reindex",
]
