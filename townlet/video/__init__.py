"""Video export: frames drawn from recordings, encoded to H.264 MP4."""
