from django.apps import AppConfig


class BoardsConfig(AppConfig):
    name = "boardsite.boards"
    label = "boards"
