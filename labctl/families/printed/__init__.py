"""Printed neuromorphic circuits (pNC): the second device family (issue 13)."""
