"""Small real HTTP servers implementing the sQuid and Qonsent contracts from a JSON fixture, for tests and
the compose file's development profile. Never for production: they trust their fixture blindly."""
