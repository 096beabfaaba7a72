"""Image references as trtkit takes them: REPO:TAG or REPO@sha256:DIGEST, checked like docker's own grammar.

No silent 'latest': a reference without a tag or digest is a usage error (typer.BadParameter, exit 2). How
trtkit build spells a reference back (--image REPO --tag TAG) is trtkit.runtime.compat.image_arguments, which
the runtime, shipped alone, needs too.
"""
import re

import typer

_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# Docker's reference grammar: [domain[:port]/]path-component(/path-component)*
_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*")


def whole_reference(text: str) -> str:
    """An IMAGE:TAG (or IMAGE@sha256:DIGEST) argument, checked like --image and --tag: no silent 'latest'."""
    if "@" not in text:
        repository, colon, tag = text.rpartition(":")
        if colon and "/" not in tag:
            return image_reference(repository, tag)
        raise typer.BadParameter(f"{text!r} names no tag: give IMAGE:TAG (there is no silent 'latest'), or "
                                 "IMAGE@sha256:DIGEST")
    return image_reference(text, None)


def pinned_by_digest(reference: str, digests: list[str]) -> str:
    """REPO:TAG as REPO@sha256:DIGEST where the registry gave a digest of that very repository (an image
    pushed elsewhere too has digests of other repositories); else the reference as it is."""
    if "@" in reference:
        return reference
    repository = reference.rsplit(":", 1)[0]
    return next((d for d in digests if d.split("@")[0] == repository), reference)


def image_reference(image: str, tag: str | None) -> str:
    """REPO:TAG, or REPO@sha256:DIGEST (pinned); a missing or malformed part is a usage error."""
    repository, at, digest = image.partition("@")
    if not _REPOSITORY.fullmatch(repository):
        raise typer.BadParameter(f"{image!r} is not a valid image repository", param_hint="--image")
    if at:
        if not _DIGEST.fullmatch(digest) or tag is not None:
            raise typer.BadParameter(f"expected REPO@sha256:<64 hex digits> without --tag, got {image!r}",
                                     param_hint="--image")
        return image
    if tag is None:
        raise typer.BadParameter("give the container tag (there is no silent 'latest'), "
                                 "or pin --image REPO@sha256:DIGEST", param_hint="--tag")
    if _DIGEST.fullmatch(tag):
        return f"{image}@{tag}"
    if not _TAG.fullmatch(tag):
        raise typer.BadParameter(f"{tag!r} is not a valid image tag", param_hint="--tag")
    return f"{image}:{tag}"
