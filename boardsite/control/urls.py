from django.urls import path

from boardsite.control import views

urlpatterns = [
    path("control/", views.overview, name="control"),
    path("control/jobs/<str:name>/", views.job_page, name="control-job"),
    path("control/jobs/<str:name>/route/", views.route_change, name="control-route"),
    path("control/jobs/<str:name>/costs.csv", views.costs_csv, name="control-costs-csv"),
    path("control/alerts/<int:pk>/ack/", views.alert_ack, name="control-alert-ack"),
    path("control/dead-letters/", views.dead_letters, name="control-dead-letters"),
    path("control/dead-letters/act/", views.dead_letter_action, name="control-dead-letter-act"),
    path("control/photos/<str:pk>/again/", views.photo_again, name="control-photo-again"),
    path("control/dead-letters/retry-set/", views.dead_letters_retry_set, name="control-dead-letters-retry-set"),
]
