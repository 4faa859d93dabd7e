from __future__ import annotations

from django.urls import re_path

from . import views

_ID = r"[^/]+"

urlpatterns = [
    re_path(
        r"^sender/hubclientinfo/?$", views.SenderListView.as_view(), name="hubclientinfo-sender"
    ),
    re_path(
        r"^receiver/hubclientinfo/?$",
        views.ReceiverRootView.as_view(),
        name="hubclientinfo-receiver",
    ),
    re_path(
        rf"^receiver/hubclientinfo/(?P<country_code>{_ID})/(?P<party_id>{_ID})/?$",
        views.ReceiverView.as_view(),
        name="hubclientinfo-receiver-object",
    ),
]
