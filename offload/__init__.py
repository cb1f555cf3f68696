"""The serverless side of boardsite.

Everything under this package runs as an AWS Lambda function (or, during the migration, inside a Celery worker or the
caller's process) and must never import Django: it talks to AWS through boto3 and reports results as events that the
web side applies. ``tests/offload/test_offload_isolation.py`` fails if anything here imports Django.
"""
