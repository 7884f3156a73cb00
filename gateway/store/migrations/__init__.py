"""Versioned schema migrations, one folder per backend, applied in file-name order."""
