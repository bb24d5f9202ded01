"""ashvault's TSM plugin: the ``tsm`` backup driver, which hands whole volumes to IBM Spectrum Protect's ``dsmc``."""
