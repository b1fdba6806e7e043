"""The notebooks qerberos runs (compliance reports) and ships, as the package data ``qerberos.notebooks``."""
