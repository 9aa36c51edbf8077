"""Reproducible experiments that measure what retrodiction and adversarial judgement can each see.

* :mod:`retro.experiments.steganography`: an imitator hiding bits in its answers (``retro experiment steganography``);
* :mod:`retro.experiments.sudoku`: puzzles with several solutions, a verifier, and log p by model counting
  (``retro experiment sudoku``); :mod:`retro.experiments.sudoku_grids` holds the grid combinatorics
  (on :mod:`retro.sudoku`, the core's grid checks).
"""
