from django.apps import AppConfig


class AvatarsConfig(AppConfig):
    name = "boardsite.avatars"

    def ready(self) -> None:
        # accounts draws avatars next to names but sits below images, which serves stored variants: hand it the URL
        # maker from here (a hook, as signals are), so no app imports one above it.
        from django.db.models.signals import post_delete

        from boardsite.accounts import avatars
        from boardsite.accounts.models import Avatar
        from boardsite.avatars.services import avatar_deleted_receiver
        from boardsite.avatars.sweep import sweeping_receiver
        from boardsite.images.selectors import variant_url
        from boardsite.images.signals import sweeping

        avatars.url_for = variant_url
        # sweep_uploads (images) settles profile-picture uploads nobody finished too, without importing this app.
        sweeping.connect(sweeping_receiver, dispatch_uid="avatars.sweeping")
        # An account deleted takes its Avatar row with it (a cascade): the stored picture goes too.
        post_delete.connect(avatar_deleted_receiver, sender=Avatar, dispatch_uid="avatars.deleted")
