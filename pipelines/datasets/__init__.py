"""Real training-set builders: labelled data sets made from the JSOC (the stand-in in tests)."""
