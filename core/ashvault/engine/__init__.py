"""The chunked engine: the native format, and the backup, restore, verify and delete pipelines over an object store."""
