"""Where results are kept: the SQLite store and its SQL."""
