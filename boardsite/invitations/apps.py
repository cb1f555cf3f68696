from django.apps import AppConfig


class InvitationsConfig(AppConfig):
    name = "boardsite.invitations"
    label = "invitations"

    def ready(self) -> None:
        from boardsite.boards.signals import owner_stepped_down
        from boardsite.invitations.services import owner_stepped_down_receiver

        owner_stepped_down.connect(owner_stepped_down_receiver, dispatch_uid="invitations.owner_stepped_down")
