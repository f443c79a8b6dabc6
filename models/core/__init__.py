"""The bottom of heliowatch: the error base, time helpers and the shared vocabulary.

Every layer may import from here (the role ``sunpy.util`` plays in sunpy); nothing here
imports any other part of heliowatch.
"""
