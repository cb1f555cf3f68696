"""Deployment tooling (never shipped to Lambda: every stage excludes ``deploy``)."""
