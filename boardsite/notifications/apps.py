from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "boardsite.notifications"
    label = "notifications"
