"""A base image no toolchain was derived from yet: the stand-in plus a label (a new image id).

Used by tests/test_toolchain.py and benchmarks/trtkit_overhead.py to watch a first derivation.
"""
import io
import tarfile
import uuid


def make_fresh_base(client, source: str, repository: str) -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    dockerfile = f"FROM {source}\nLABEL org.trtkit.fresh={tag}\n".encode()
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    context.seek(0)
    client.images.build(fileobj=context, custom_context=True, tag=f"{repository}:{tag}", rm=True)
    return repository, tag


def remove_fresh_base(client, repository: str, tag: str) -> None:
    """The base image and the toolchain images derived from it."""
    for image in client.images.list(filters={"label": f"org.trtkit.base={repository}:{tag}"}):
        client.images.remove(image.id, force=True)
    client.images.remove(f"{repository}:{tag}", force=True)
