"""Multi-object tracking: a faithful ByteTrack (`bytetrack.py`) on numpy + scipy."""
