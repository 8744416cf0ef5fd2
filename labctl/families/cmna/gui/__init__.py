"""CMNA's parts of the GUI shell (``CmnaFamily.gui``): imported by name, only by the window."""
