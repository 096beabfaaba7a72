"""toolkit/toolchain.py without Docker (test_toolchain.py derives real ones)."""
import threading
import time
from types import SimpleNamespace

from trtkit import toolchain


def test_builds_started_together_derive_a_new_toolchain_once(tmp_path, monkeypatch):
    """A matrix's first builds on a new tag: one derives the toolchain (minutes, gigabytes), the others wait."""
    monkeypatch.setenv("TRTKIT_CACHE", str(tmp_path))
    monkeypatch.setattr(toolchain, "probe", lambda runner, image_id, limits: {})
    tagged: dict = {}
    derived: list[str] = []

    def build_image(context, tag, buildargs, labels, on_line):
        derived.append(tag)
        time.sleep(0.5)
        tagged[tag] = SimpleNamespace(id="sha256:toolchain")
        return tagged[tag]

    runner = SimpleNamespace(image=lambda reference: SimpleNamespace(id="sha256:" + "1" * 64, attrs={}),
                             build_image=build_image,
                             client=SimpleNamespace(images=SimpleNamespace(list=lambda name: list(
                                 filter(None, [tagged.get(name)])))))
    results: list = []
    started = [threading.Thread(target=lambda: results.append(toolchain.ensure_toolchain(runner, "i:t", None, print)))
               for _ in range(3)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()
    assert len(derived) == 1 and sorted(t.derived for t in results) == [False, False, True]
