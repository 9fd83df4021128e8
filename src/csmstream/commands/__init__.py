"""Subcommands of the `csmstream` command, one module each (see csmstream.cli)."""
