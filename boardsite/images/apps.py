from django.apps import AppConfig


class ImagesConfig(AppConfig):
    name = "boardsite.images"
    label = "images"
