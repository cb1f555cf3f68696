from django.apps import AppConfig


class MailConfig(AppConfig):
    name = "boardsite.mail"
    label = "mail"
