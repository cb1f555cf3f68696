from django.apps import AppConfig


class AvatarsConfig(AppConfig):
    name = "boardsite.avatars"

    def ready(self) -> None:
        # accounts draws avatars next to names but sits below images, which serves stored variants: hand it the URL
        # maker from here (a hook, as signals are), so no app imports one above it.
        from boardsite.accounts import avatars
        from boardsite.images.selectors import variant_url

        avatars.url_for = variant_url
