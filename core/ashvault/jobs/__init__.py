"""Running jobs: the job (a plain request), the dispatcher that sends it, and the manager that runs it."""
