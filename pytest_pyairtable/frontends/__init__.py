"""The two thin front ends over the core: the pytest plugin and the ``pyairtable`` command."""
