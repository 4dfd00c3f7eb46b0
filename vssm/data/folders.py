"""Finding the images and labels of a classification dataset: an ImageFolder directory or a list file, with errors
that say which layout is expected."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from timm.data import ImageNetInfo
from timm.data.readers.img_extensions import get_img_extensions

IMAGE_EXTENSIONS = frozenset(get_img_extensions())
FOLDER_LAYOUT = (
    "an ImageFolder directory with one sub-folder of images per class, e.g. val/n01440764/ILSVRC2012_val_00000293.JPEG "
    f"(image files: {', '.join(sorted(IMAGE_EXTENSIONS))})"
)
LIST_LAYOUT = "a list file with one '<image path> <integer label>' per line, paths relative to the list's folder"


class DatasetLayoutError(ValueError):
    """A dataset path that does not have the layout the tools read."""


@dataclass(frozen=True)
class Samples:
    """Images and labels of a dataset. items: (path, label index); classes[label] is the label's name."""

    root: Path
    items: list[tuple[Path, int]]
    classes: list[str]

    def __len__(self) -> int:
        return len(self.items)


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _images_under(folder: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames.sort()
        found.extend(Path(dirpath) / name for name in sorted(filenames) if _is_image(name))
    return found


def _layout_error(path: Path, problem: str) -> DatasetLayoutError:
    return DatasetLayoutError(f"dataset {path}: {problem}; expected {FOLDER_LAYOUT}, or {LIST_LAYOUT}")


def _numbered_classes(root: Path, folders: list[str]) -> list[str]:
    """Class names for integer-named folders: folder n at label n, the labels between named by their number."""
    classes = [str(i) for i in range(max(int(f) for f in folders) + 1)]
    by_label: dict[int, str] = {}
    for folder in folders:
        if int(folder) in by_label:
            raise _layout_error(root, f"class folders {by_label[int(folder)]!r} and {folder!r} are the same number")
        by_label[int(folder)] = classes[int(folder)] = folder
    return classes


def image_folder_samples(root: str | os.PathLike, class_names: Sequence[str] | None = None) -> Samples:
    """The images of an ImageFolder directory `root/<class>/**/<image>`.

    Labels follow the sorted class folder names; folders named by integers ('0', '7', '999') are those labels (not
    the sorted order, where '10' would come before '2'). With `class_names` (a label order fixed elsewhere, e.g.
    ImageNet-1k's synsets or a training run's classes) every folder must be one of them and its label is its
    position there, so evaluating a subset of the classes keeps the model's label numbers.
    """
    root = Path(root)
    if not root.exists():
        raise _layout_error(root, "no such directory")
    if not root.is_dir():
        raise _layout_error(root, "not a directory")
    entries = sorted(os.scandir(root), key=lambda e: e.name)
    folders = [e.name for e in entries if e.is_dir() and not e.name.startswith(".")]
    loose = [e.name for e in entries if e.is_file() and _is_image(e.name)]
    if loose:
        shown = ", ".join(loose[:3]) + (" ..." if len(loose) > 3 else "")
        raise _layout_error(root, f"found images directly in it ({shown}) instead of in class sub-folders")
    if not folders:
        raise _layout_error(root, "empty (no class sub-folders)")
    if class_names is None:
        classes = _numbered_classes(root, folders) if all(f.isdigit() for f in folders) else folders
    else:
        classes = list(class_names)
        known = set(classes)
        unknown = [f for f in folders if f not in known]
        if unknown:
            raise _layout_error(root, f"class folders {unknown[:5]} are not among the model's {len(classes)} classes "
                                f"(e.g. {classes[:3]})")
    index = {name: i for i, name in enumerate(classes)}
    items, empty = [], []
    for folder in folders:
        images = _images_under(root / folder)
        if not images:
            empty.append(folder)
        items.extend((path, index[folder]) for path in images)
    if empty:
        raise _layout_error(root, f"class folders without images: {empty[:5]}{' ...' if len(empty) > 5 else ''}")
    return Samples(root, items, classes)


def image_list_samples(list_file: str | os.PathLike, root: str | os.PathLike | None = None,
                       class_names: Sequence[str] | None = None) -> Samples:
    """The images of a list file: lines '<path> <label>' (blank lines and '#' comments skipped), paths relative to
    `root` (default: the list file's folder). Classes are `class_names` or the labels' numbers."""
    list_file = Path(list_file)
    root = Path(root) if root is not None else list_file.parent
    try:
        lines = list_file.read_text().splitlines()
    except UnicodeDecodeError:
        raise DatasetLayoutError(f"list file {list_file}: not a text file; expected {LIST_LAYOUT}, "
                                 f"or {FOLDER_LAYOUT}") from None
    items, missing = [], []
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise DatasetLayoutError(f"list file {list_file}, line {number}: expected '<image path> <integer label>', "
                                     f"got {line!r}")
        path, label = root / parts[0], int(parts[1])
        if label < 0 or (class_names is not None and label >= len(class_names)):
            limit = f" < {len(class_names)}" if class_names is not None else ""
            raise DatasetLayoutError(f"list file {list_file}, line {number}: expected a label >= 0{limit}, got {label}")
        if not path.is_file():
            missing.append(str(path))
        items.append((path, label))
    if not items:
        raise DatasetLayoutError(f"list file {list_file}: no samples; expected {LIST_LAYOUT}")
    if missing:
        raise DatasetLayoutError(f"list file {list_file}: {len(missing)} listed images do not exist (first: "
                                 f"{missing[:3]}); paths are relative to {root}")
    classes = list(class_names) if class_names is not None else [str(i) for i in range(max(lb for _, lb in items) + 1)]
    return Samples(root, items, classes)


def imagenet_class_names(path: str | os.PathLike) -> list[str] | None:
    """ImageNet-1k's synsets in label order when `path` is an ImageFolder whose class folders are all synsets (so a
    subset of the validation classes keeps its labels), else None."""
    path = Path(path)
    if not path.is_dir():
        return None
    folders = [e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith(".")]
    synsets = ImageNetInfo().label_names()
    known = set(synsets)
    return synsets if folders and all(f in known for f in folders) else None


def find_samples(path: str | os.PathLike, root: str | os.PathLike | None = None,
                 class_names: Sequence[str] | None = None) -> Samples:
    """A directory is read as an ImageFolder, a file as a list file (see `image_folder_samples`,
    `image_list_samples`); `root` only applies to list files."""
    path = Path(path)
    if path.is_file():
        return image_list_samples(path, root, class_names)
    return image_folder_samples(path, class_names)
