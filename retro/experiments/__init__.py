"""Experiments built on retro."""
