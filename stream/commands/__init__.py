"""One module per `rnnwatch` sub-command: `add_arguments(parser)` and `run(args) -> int`."""
