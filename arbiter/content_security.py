"""The Content-Security-Policy header: django-csp's for the pages, a fixed one for the API.

The pages get ``CONTENT_SECURITY_POLICY`` (settings) from django-csp, which builds it per
response (about 60 us) so that a view may add to it or use a nonce. The API answers JSON
(and CSV downloads), which a browser never renders as a page, so it gets the strictest
policy there is, as a constant: nothing may load from it and nothing may frame it. The
decision path, thousands of requests a second, does not pay for building the header.
"""

from __future__ import annotations

from csp.middleware import CSPMiddleware
from django.http import HttpRequest, HttpResponseBase

API_PREFIX = "/api/v1/"
API_POLICY = "default-src 'none'; frame-ancestors 'none'"


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    def process_request(self, request: HttpRequest) -> None:
        if not request.path_info.startswith(API_PREFIX):
            super().process_request(request)

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if request.path_info.startswith(API_PREFIX):
            response.headers.setdefault("Content-Security-Policy", API_POLICY)
            return response
        return super().process_response(request, response)
