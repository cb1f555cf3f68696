from django.apps import AppConfig


class InvitationsConfig(AppConfig):
    name = "boardsite.invitations"
    label = "invitations"
