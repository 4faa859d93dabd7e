from __future__ import annotations

from django.urls import re_path

from . import views

# {id} segments: CiString, no '/'. Paths answer with and without a trailing slash.
_ID = r"[^/]+"
_OBJECT = rf"(?P<location_id>{_ID})(?:/(?P<evse_uid>{_ID}))?(?:/(?P<connector_id>{_ID}))?/?$"

urlpatterns = [
    re_path(r"^sender/locations/?$", views.SenderListView.as_view(), name="locations-sender"),
    re_path(
        r"^sender/locations/" + _OBJECT,
        views.SenderObjectView.as_view(),
        name="locations-sender-object",
    ),
    re_path(r"^receiver/locations/?$", views.ReceiverRootView.as_view(), name="locations-receiver"),
    re_path(
        rf"^receiver/locations/(?P<country_code>{_ID})/(?P<party_id>{_ID})/" + _OBJECT,
        views.ReceiverView.as_view(),
        name="locations-receiver-object",
    ),
    # An id with an encoded '/' reads as more segments here: the view splits the raw target.
    re_path(
        r"^receiver/locations/(?P<segments>.+)$",
        views.ReceiverView.as_view(),
        name="locations-receiver-raw",
    ),
]
