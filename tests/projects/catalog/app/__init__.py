"""A product catalogue's backend: its seed job and the settings its tests share."""
