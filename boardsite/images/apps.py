from django.apps import AppConfig


class ImagesConfig(AppConfig):
    name = "boardsite.images"
    label = "images"

    def ready(self) -> None:
        from boardsite.images import checks  # noqa: F401 - registers the CDN's system checks
