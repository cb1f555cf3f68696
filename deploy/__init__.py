"""Deploy tooling (never shipped to Lambda): `python -m deploy <command>`; see deploy/__main__.py."""
