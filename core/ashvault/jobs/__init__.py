"""Running jobs: locks that prove a job's owner is alive, the manager that runs one job, and dispatchers."""
