from django.apps import AppConfig


class ImagesConfig(AppConfig):
    name = "boardsite.images"
    label = "images"

    def ready(self) -> None:
        from boardsite.accounts.tokens import token_revoked
        from boardsite.boards.signals import board_deleting, member_removed
        from boardsite.images import checks  # noqa: F401 - registers the CDN's system checks
        from boardsite.images.grants import member_removed_receiver, token_revoked_receiver
        from boardsite.images.services import board_deleting_receiver

        # boards announces a deletion; images (above it) deletes the board's stored objects.
        board_deleting.connect(board_deleting_receiver, dispatch_uid="images.board_deleting")
        # a member removed may hold upload grants: they end now (boardsite/images/grants.py)
        member_removed.connect(member_removed_receiver, dispatch_uid="images.member_removed")
        token_revoked.connect(token_revoked_receiver, dispatch_uid="images.token_revoked")
