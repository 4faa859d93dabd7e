"""The URL routes of the declared modules, mounted under /ocpi/2.2.1/ (``registry.mount``)."""

from __future__ import annotations

from django.urls import URLPattern, re_path

from ocpi_platform.ocpi import registry

from .spec import ModuleSpec

_ID = r"[^/]+"  # {id} segments: CiString, no '/'. Paths answer with and without a trailing '/'.


def mount(spec: ModuleSpec) -> None:
    registry.mount("kit.urls")


def patterns(spec: ModuleSpec) -> list[URLPattern]:
    from . import views

    p = spec.prefix
    sender = ["options"] + (["get"] if "LIST" in spec.sender_methods else [])
    receiver = ["options"] + [m.lower() for m in sorted(spec.receiver_methods)]
    urls = [
        re_path(
            rf"^sender/{p}/?$",
            views.SenderListView.as_view(spec=spec, http_method_names=sender),
            name=f"{p}-sender",
        ),
        re_path(
            rf"^receiver/{p}/?$",
            views.ReceiverRootView.as_view(spec=spec, http_method_names=["options"]),
            name=f"{p}-receiver",
        ),
        re_path(
            rf"^receiver/{p}/(?P<country_code>{_ID})/(?P<party_id>{_ID})/(?P<object_id>{_ID})/?$",
            views.ReceiverView.as_view(spec=spec, http_method_names=receiver),
            name=f"{p}-receiver-object",
        ),
        # An id with an encoded '/' reads as more segments here: the view splits the raw target.
        re_path(
            rf"^receiver/{p}/(?P<segments>.+)$",
            views.ReceiverView.as_view(spec=spec, http_method_names=receiver),
            name=f"{p}-receiver-raw",
        ),
    ]
    if "GET" in spec.sender_methods:
        urls.append(
            re_path(
                rf"^sender/{p}/(?P<object_id>{_ID})/?$",
                views.SenderObjectView.as_view(spec=spec),
                name=f"{p}-sender-object",
            )
        )
    return urls
