from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "boardsite.accounts"
    label = "accounts"
