"""Subcommands of the ``layerscope`` command line, one module each (see layerscope.cli)."""
