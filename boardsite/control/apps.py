from django.apps import AppConfig


class ControlConfig(AppConfig):
    """The migration control room: where staff move a job between runtimes and see how each does (top layer)."""

    name = "boardsite.control"
    label = "control"
