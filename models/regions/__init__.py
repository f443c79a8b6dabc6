"""Active-region science on full-disk magnetograms: frames, detection, Mt. Wilson classes, tracking.

Pure computation on images already read (:class:`heliowatch.models.core.image.Image`); the
pipelines read the files and the region product assembles records from these results.
"""
