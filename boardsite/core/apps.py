from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "boardsite.core"
    label = "core"

    def ready(self) -> None:
        from boardsite import secrets
        from boardsite.core import checks  # noqa: F401  (registers the OFFLOAD_MODES check)

        if secrets.snapshot_init():
            # Work done now is in the SnapStart snapshot, not in each restored instance's cold start: botocore's data
            # for the clients a restore and the first pages make (SSM for the secrets, S3 for the pages' images and
            # the Content-Security-Policy), without a client, credentials or a connection.
            from offload import aws

            aws.prewarm(("ssm", "s3"))
