"""The products: each turns verified frames of the source kinds it consumes into a batch of
records, files and alerts, without touching a sink (:mod:`heliowatch.pipelines.products.base`)."""
