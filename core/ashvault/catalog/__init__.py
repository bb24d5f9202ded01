"""The catalog: volumes and backups in SQLite (under ashvault_state_path by default) or PostgreSQL."""

from ashvault.catalog.db import Catalog
from ashvault.catalog.models import Backup, BackupStatus, JobRecord, JobState, Service, Volume, VolumeStatus

__all__ = ["Backup", "BackupStatus", "Catalog", "JobRecord", "JobState", "Service", "Volume", "VolumeStatus"]
