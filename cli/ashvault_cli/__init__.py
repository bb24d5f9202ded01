"""The ashvault command-line tool and interactive shell."""
