"""Synthetic SDO data with exact ground truth (``heliowatch synth``).

Every generator is seeded and deterministic. Outputs are FITS that ``sunpy.map.Map`` opens,
with the truth in JSON beside them. Anything trained on these is marked synthetic.
"""
