"""The kube client against a real HTTP server on loopback: a 429 (the API server busy, or a
resource's storage still initializing) is sent again after its Retry-After, a bounded number of
times; other errors are not retried."""

from __future__ import annotations

from aiohttp import web

from modelfleet.kube import ApiError, KubeAccess, KubeClient
from modelfleet.kube.client import MAX_RETRY_AFTER, THROTTLE_RETRIES, retry_delay
from tests.webserve import WebServer


def _app(answers: list[web.Response], seen: list[str]) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        seen.append(request.method)
        return answers.pop(0) if answers else web.json_response({"kind": "Ok"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def _busy() -> web.Response:
    body = {"kind": "Status", "code": 429, "message": "storage is (re)initializing"}
    return web.json_response(body, status=429, headers={"Retry-After": "0"})


async def test_a_429_is_sent_again_after_its_retry_after(web_server: WebServer) -> None:
    seen: list[str] = []
    url = await web_server(_app([_busy(), _busy()], seen))
    async with KubeClient(KubeAccess(server=url)) as kube:
        assert await kube.get("/apis/modelfleet.dev/v1alpha1/edgegateways") == {"kind": "Ok"}
    assert seen == ["GET", "GET", "GET"]


async def test_a_429_that_lasts_is_an_error_after_a_bounded_number_of_tries(
    web_server: WebServer,
) -> None:
    seen: list[str] = []
    url = await web_server(_app([_busy() for _ in range(THROTTLE_RETRIES + 5)], seen))
    async with KubeClient(KubeAccess(server=url)) as kube:
        try:
            await kube.get("/api/v1/namespaces")
        except ApiError as exc:
            assert exc.status == 429 and "storage is (re)initializing" in str(exc)
        else:
            raise AssertionError("a lasting 429 must fail")
    assert len(seen) == THROTTLE_RETRIES + 1


async def test_other_errors_are_not_sent_again(web_server: WebServer) -> None:
    seen: list[str] = []
    conflict = web.json_response({"message": "the object has been modified"}, status=409)
    url = await web_server(_app([conflict], seen))
    async with KubeClient(KubeAccess(server=url)) as kube:
        try:
            await kube.merge_patch("/apis/x/v1/things/a", {"spec": {}}, resource_version="1")
        except ApiError as exc:
            assert exc.conflict
        else:
            raise AssertionError("a 409 must fail")
    assert seen == ["PATCH"]


def test_the_delay_is_the_retry_after_header_bounded() -> None:
    assert retry_delay("2") == 2.0
    assert retry_delay(None) == 1.0
    assert retry_delay("soon") == 1.0
    assert retry_delay("-3") == 0.0
    assert retry_delay("3600") == MAX_RETRY_AFTER
