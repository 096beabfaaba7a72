"""The two Engine API requests that no public call of the Docker SDK makes, sent through the SDK's own session.

    GET /images/get?names=A&names=B  `docker save A B`: APIClient.get_image takes one name, and only one archive
                                     of them all stores the layers a base image shares with its toolchains once
    GET /containers/ID/archive       get_archive's own request: the SDK keeps its response inside a generator,
                                     which cannot hang up, and a stream left open keeps the container busy

An APIClient is a requests.Session, and its base_url and api_version say where the daemon is: the requests go
through it (its transport, a unix socket, TLS or ssh) by public names only. tests/test_engine_api.py runs both
against the real engine, so an SDK that changes them fails there.
"""
import docker
import docker.errors
import requests


def streamed_get(api: docker.APIClient, path: str, params: dict, timeout: float | None) -> requests.Response:
    """GET path of the Engine API, its body as raw bytes to stream; the daemon's errors raised as the SDK's
    (NotFound, APIError). The caller closes the response."""
    response = api.get(f"{api.base_url}/v{api.api_version}{path}", params=params, stream=True, timeout=timeout,
                       headers={"Accept-Encoding": "identity"})
    try:
        response.raise_for_status()
    except requests.HTTPError as e:
        try:
            docker.errors.create_api_error_from_http_exception(e)    # raises it
        finally:
            response.close()
    return response
