"""The JSON API for programs (the terminal client, scripts): boards, their photos, downloads, and its OpenAPI
document. The upload endpoints the page uses too live with the photos (``boardsite/images/views.py``); access
tokens in ``boardsite/accounts/tokens.py``."""
