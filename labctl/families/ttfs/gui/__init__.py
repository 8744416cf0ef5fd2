"""The TTFS family's parts of the GUI shell (``TtfsFamily.gui``): imported by name, only by the window."""
