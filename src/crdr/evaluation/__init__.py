"""Evaluation: q x beta grids, result tables and RD plots."""
