"""ashvault driver for Google Cloud Storage (google-cloud-storage, through its own retry and checksum support)."""
