from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "boardsite.core"
    label = "core"

    def ready(self) -> None:
        from boardsite.core import checks  # noqa: F401  (registers the OFFLOAD_MODES check)
