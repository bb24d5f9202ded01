"""ashvault: a pluggable volume-backup service."""

__version__ = "0.1.0"
