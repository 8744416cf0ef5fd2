"""Simulated PNC-1 process: EGT compact model, cell DC solves and printing variation."""
