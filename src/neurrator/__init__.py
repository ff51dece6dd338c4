"""Neurrator: spike trains → patch embeddings of a frozen vision tower → one sentence.

Pipeline layers (data flows one way): :mod:`neurrator.data` → :mod:`neurrator.preprocess` →
:mod:`neurrator.vision` → :mod:`neurrator.encoder` → :mod:`neurrator.narrate` →
:mod:`neurrator.evaluate` → :mod:`neurrator.analysis` → :mod:`neurrator.report`.
"""

__version__ = "0.1.0"
