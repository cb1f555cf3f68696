from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "boardsite.notifications"
    label = "notifications"

    def ready(self) -> None:
        from boardsite.notifications import receivers

        # The apps below announce events with their own signals; notifications, on top, listens.
        receivers.connect()
