"""The one-click window (PySide6 + pyqtgraph): ``labctl gui``; see docs/gui.md."""
