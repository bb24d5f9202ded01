"""Backup workers: ``ashvault-backup`` processes that run the jobs the API sends over oslo.messaging."""
