"""jvla: a reproducible replication of JARVIS-VLA (arXiv 2503.16365)."""

__version__ = "0.1.0"
