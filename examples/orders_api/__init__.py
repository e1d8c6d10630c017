"""A small business API protected only by dojang's verifier (see README.md)."""
