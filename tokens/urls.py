from __future__ import annotations

from django.urls import re_path

from . import views

# Claimed by the tokens sender endpoint (ocpi:tokens-sender), served when we are an eMSP.
urlpatterns = [
    re_path(
        r"^sender/tokens/(?P<uid>[^/]+)/authorize/?$",
        views.AuthorizeView.as_view(),
        name="tokens-sender-authorize",
    ),
]
