"""ashvault drivers for file-system backends: posix (a local directory); nfs and glusterfs mount a share first."""
