"""The commands of the ashvault shell, registered under the ``ashvault.cli`` entry points."""
