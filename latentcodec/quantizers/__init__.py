"""Built-in quantizers: ``uniform`` (scalar step) and ``uint8`` (Bühlmann's recipe)."""
