from django.urls import path

from boardsite.control import views

urlpatterns = [
    path("control/", views.overview, name="control"),
    path("control/jobs/<str:name>/", views.job_page, name="control-job"),
    path("control/jobs/<str:name>/route/", views.route_change, name="control-route"),
    path("control/jobs/<str:name>/costs.csv", views.costs_csv, name="control-costs-csv"),
    path("control/alerts/<int:pk>/ack/", views.alert_ack, name="control-alert-ack"),
]
