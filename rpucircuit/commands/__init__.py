"""One module per ``rpucircuit`` subcommand (see :mod:`rpucircuit.cli`)."""
