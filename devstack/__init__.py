"""The local stack: what ``make run`` starts in place of AWS, and never ships to Lambda.

The function runner (Lambda's SQS/S3 integration, on this machine), the web-side job runner (``manage.py runjobs``),
provisioning of the local AWS (moto), the CloudFront stand-in, the S3 snapshotter and the supervisor that runs them
all (``manage.py devstack``). A Django app only where it is installed (``boardsite/settings.py`` adds it when it can
be imported): the stages' zips hold ``boardsite`` and ``offload`` only (deploy/build.py).
"""
