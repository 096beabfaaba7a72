"""trtkit lock: pin an image's digest, its toolchain and the toolchain's packages in ./trtkit.lock."""
from pathlib import Path

from .. import image_ref, options, session
from ..console import out, print_json, user_errors
from ..lock import LOCK_NAME, pinned_reference


@user_errors
def lock(
    tag: options.Tag = None,
    image: options.Image = options.DEFAULTS["image"],
    memory: options.Memory = None,
    json_output: options.Json = False,
) -> None:
    """Record IMAGE:TAG in ./trtkit.lock, for `trtkit build --locked` (the toolchain is derived first if needed).

    The entry holds the image's registry digest (its id for a local image), the toolchain image, every
    package in it with its version, and trtkit's version. Run it again for another tag: entries are merged.
    """
    reference = image_ref.image_reference(image, tag)
    entry = session.lock_image(reference, options.parse_memory(memory), Path(LOCK_NAME).absolute())
    if json_output:
        print_json({"image": reference, **entry})
        return
    pinned = pinned_reference(reference, entry)
    if "@" not in pinned:
        pinned = f"{entry['id']} (a local image: no registry digest)"
    out.print(f"{LOCK_NAME}: {reference} -> {pinned}; toolchain {entry['toolchain']['tag']} with "
              f"{len(entry['packages'])} packages", markup=False)
