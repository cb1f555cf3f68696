from django.urls import path

from boardsite.mail import devmail

urlpatterns = [
    # Development only (DEBUG and staff, else 404): the mail the local SES accepted.
    path("dev/mail/", devmail.mail_page, name="dev-mail"),
]
