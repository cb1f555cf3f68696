from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "boardsite.accounts"
    label = "accounts"

    def ready(self) -> None:
        from axes.signals import user_locked_out
        from django.contrib.auth import get_user_model
        from django.contrib.auth.signals import user_logged_in
        from django.db.models.signals import post_save, pre_save

        from boardsite.accounts import signals, throttle

        User = get_user_model()
        pre_save.connect(signals.check_username_key, sender=User, dispatch_uid="accounts.check_username_key")
        post_save.connect(signals.sync_username_key, sender=User, dispatch_uid="accounts.sync_username_key")
        user_logged_in.connect(signals.tell_former_name, dispatch_uid="accounts.tell_former_name")
        user_logged_in.connect(signals.prompt_for_email, dispatch_uid="accounts.prompt_for_email")
        user_locked_out.connect(throttle.record_lockout, dispatch_uid="accounts.record_lockout")
