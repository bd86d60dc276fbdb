"""The ``pyairtable`` command: its options, subcommands and their output."""
