"""The printed family's parts of the GUI shell (``PrintedFamily.gui``): imported by name, only by the window."""
