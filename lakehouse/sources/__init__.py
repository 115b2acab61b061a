"""Synthetic source data generator and source loaders."""
