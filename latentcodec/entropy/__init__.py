"""Built-in entropy coders: ``ans`` (constriction, static per-channel model) and ``zlib``."""
