"""The GPU proof's pieces: split what is too big, list every piece with its sha256, plan the device calls.

    python3 benchmarks/gpu_proof/pieces.py split FILE KIT/NAME    FILE as KIT/NAME, or KIT/NAME.partNN when too big
    python3 benchmarks/gpu_proof/pieces.py list KIT [TREE_BYTES]  KIT/infra/PIECES.sha256 and KIT/CALLS.md

A transfer to this project's GPU machine holds at most 64 MiB, the working tree included, so every piece is at
most 60 MiB (LIMIT). PIECES.sha256 is the list ../shared/gpu/stash.sh checks and stores in /tmp/kit: every file
under KIT but infra/ (the scripts, which come with the first call) and trt/ (the TensorRT kit's chunks, which
stash.sh hands to assemble.sh with their own SHA256SUMS). CALLS.md groups the pieces into calls: each carries
at most 8 paths (the device tool's limit) and the working tree (TREE_BYTES) within the 64 MiB.
"""
import hashlib
import os
import shutil
import sys
from pathlib import Path

MIB = 1 << 20
LIMIT = int(os.environ.get("PIECE_LIMIT_BYTES", 60 * MIB))      # smaller in tests
TRANSFER = int(os.environ.get("TRANSFER_LIMIT_BYTES", 64 * MIB))
MARGIN = MIB                # what the transfer adds around the files
CARRY_PATHS = 8
NOT_LISTED = ("infra", "trt")
UNITS = ("wheels", "image-wheels", "keras-wheels")     # folders of small pieces, carried as one path each


def split(source: Path, target: Path) -> list[Path]:
    """source moved to target, or cut into target.part00, .part01, ... of LIMIT bytes when larger."""
    for old in [target, *target.parent.glob(target.name + ".part*")]:
        old.unlink(missing_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.stat().st_size <= LIMIT:
        shutil.move(source, target)
        return [target]
    parts = []
    with source.open("rb") as f:
        while chunk := f.read(LIMIT):
            parts.append(target.with_name(f"{target.name}.part{len(parts):02d}"))
            parts[-1].write_bytes(chunk)
    source.unlink()
    return parts


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def pieces(kit: Path) -> list[Path]:
    """Every file of the kit that stash.sh lists, relative to kit (work/ and zoo/ are run.sh export's and
    zoo-export's folders, packed into work.tar.xz and zoo.tar)."""
    skipped = (*NOT_LISTED, "work", "zoo")
    return sorted(p.relative_to(kit) for p in kit.rglob("*")
                  if p.is_file() and p.relative_to(kit).parts[0] not in skipped and p.name != "CALLS.md")


def too_big(kit: Path) -> list[str]:
    """The pieces and kit chunks over LIMIT (infra/'s scripts are a few KiB: plan() checks they fit a call)."""
    return [f"{p.relative_to(kit)} ({p.stat().st_size / MIB:.1f} MiB)" for p in sorted(kit.rglob("*"))
            if p.is_file() and p.relative_to(kit).parts[0] not in ("work", "zoo", "infra") and p.stat().st_size > LIMIT]


def write_list(kit: Path) -> list[Path]:
    listed = pieces(kit)
    text = "".join(f"{sha256(kit / p)}  {p}\n" for p in listed)
    (kit / "infra").mkdir(exist_ok=True)
    (kit / "infra" / "PIECES.sha256").write_text(text)
    return listed


def carry_units(kit: Path) -> list[tuple[str, int]]:
    """(path under kit, bytes) of what one carry path brings: infra/ first, then the kit's SHA256SUMS and
    chunks, then the other pieces, folders of small ones as one path."""
    def size(path: Path) -> int:
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size

    units = [("infra", size(kit / "infra"))]
    trt = kit / "trt"
    if trt.is_dir():
        units += [(f"trt/{p.name}", size(p)) for p in sorted(trt.iterdir()) if p.is_file()]
    for name in UNITS:
        if (kit / name).is_dir():
            units.append((name, size(kit / name)))
    units += [(str(p), size(kit / p)) for p in pieces(kit) if p.parts[0] not in UNITS]
    return units


def plan(units: list[tuple[str, int]], tree_bytes: int) -> list[list[tuple[str, int]]]:
    """Units into calls in order (first fit, the first call holding infra/ and the kit's SHA256SUMS)."""
    room = TRANSFER - MARGIN - tree_bytes
    calls: list[list[tuple[str, int]]] = []
    for unit in units:
        if unit[1] > room:
            raise SystemExit(f"pieces.py: {unit[0]} ({unit[1] / MIB:.1f} MiB) does not fit one call beside the "
                             f"working tree ({tree_bytes / MIB:.1f} MiB)")
        fits = [call for call in calls if len(call) < CARRY_PATHS and sum(b for _, b in call) + unit[1] <= room]
        if fits:
            fits[0].append(unit)
        else:
            calls.append([unit])
    return calls


def calls_text(calls: list[list[tuple[str, int]]], kit_name: str) -> str:
    lines = ["# Device calls that bring the pieces (benchmarks/gpu_proof/pieces.py; docs/gpu-proof-staging.md)", ""]
    for number, call in enumerate(calls, 1):
        script = f"{kit_name}/infra/stash.sh" if number == 1 else "/tmp/kit/infra/stash.sh"
        carry = ", ".join(f'"{kit_name}/{path}"' for path, _ in call)
        total = sum(b for _, b in call) / MIB
        lines += [f"{number}. {total:.1f} MiB: carry [{carry}]", f"   command: bash {script}", ""]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    if len(argv) == 3 and argv[0] == "split":
        for part in split(Path(argv[1]), Path(argv[2])):
            print(f"{part}  {part.stat().st_size / MIB:.1f} MiB")
        return
    if len(argv) in (2, 3) and argv[0] == "list":
        kit = Path(argv[1])
        if big := too_big(kit):
            raise SystemExit(f"pieces.py: over {LIMIT / MIB:g} MiB: {', '.join(big)}")
        listed = write_list(kit)
        calls = plan(carry_units(kit), int(argv[2]) if len(argv) == 3 else 0)
        (kit / "CALLS.md").write_text(calls_text(calls, kit.name))
        print(f"{kit}/infra/PIECES.sha256: {len(listed)} pieces; {kit}/CALLS.md: {len(calls)} calls")
        return
    raise SystemExit(__doc__.split("\n\n")[1])


if __name__ == "__main__":
    main(sys.argv[1:])
