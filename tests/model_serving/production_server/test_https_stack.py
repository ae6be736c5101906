"""The local stack with TLS on speaks HTTPS like a production host: nginx from the same template with a
self-signed certificate, plain HTTP only redirecting, HSTS, and a Secure session cookie the form still works
with over HTTPS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from model_serving.process_stack.stack import Stack
from tests.support import form_data, hand_typed_rows, page_csrf_token, require_stack_tools, start_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def https_stack(tmp_path_factory: pytest.TempPathFactory, signed_model: tuple[Path, str]) -> Iterator[Stack]:
    require_stack_tools()
    stack = start_stack(tmp_path_factory.mktemp("https-stack"), signed_model[0], tls=True)
    try:
        yield stack
    finally:
        stack.stop()


def test_the_stack_answers_over_https_and_redirects_plain_http(https_stack: Stack) -> None:
    assert https_stack.url.startswith("https://") and https_stack.nginx is not None
    cert = str(https_stack.tls_certificate)
    ready = requests.get(f"{https_stack.url}/readyz", verify=cert, timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.headers["Strict-Transport-Security"] == "max-age=31536000"
    plain = requests.get(f"{https_stack.nginx.url}/healthz", allow_redirects=False, timeout=10)
    assert plain.status_code == 301
    assert plain.headers["Location"] == f"{https_stack.url}/healthz"


def test_the_session_cookie_is_secure_and_the_form_works_over_https(
    https_stack: Stack, signed_model: tuple[Path, str]
) -> None:
    cert = str(https_stack.tls_certificate)
    with requests.Session() as session:
        page = session.get(f"{https_stack.url}/", verify=cert, timeout=10)
        assert page.status_code == 200
        cookie = page.headers["Set-Cookie"]
        assert cookie.startswith("session=") and "; Secure" in cookie, cookie
        form = form_data(hand_typed_rows(), page_csrf_token(page.text))
        # A browser sends this page as the Referer (Referrer-Policy same-origin): over HTTPS the CSRF check
        # wants it, so a policy of no-referrer would refuse every form.
        assert page.headers["Referrer-Policy"] == "same-origin"
        result = session.post(f"{https_stack.url}/predict", data=form, headers={"Referer": page.url},
                              verify=cert, timeout=30)
        assert result.status_code == 200, result.text[:500]
        assert signed_model[1] in result.text
        elsewhere = session.post(f"{https_stack.url}/predict", data=form,
                                 headers={"Referer": "https://evil.example/"}, verify=cert, timeout=30)
        assert elsewhere.status_code == 400
