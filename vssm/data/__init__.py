"""Data for the classification tools: dataset layouts (ImageFolder, list files), a dataset that reports unreadable
images, timm evaluation preprocessing, albumentations training augmentation, and the digits demo dataset."""

from .augment import AlbumentationsTransform, TrainAugmentation, build_train_transform
from .folders import (
    DatasetLayoutError,
    Samples,
    find_samples,
    image_folder_samples,
    image_list_samples,
    imagenet_class_names,
)
from .images import BadImages, Batch, ImageSamples, Unreadable, UnreadableImageError, check_unreadable, collate_samples
from .preprocessing import EvalPreprocessing, eval_preprocessing, saved_data_config

__all__ = [
    "AlbumentationsTransform",
    "BadImages",
    "Batch",
    "DatasetLayoutError",
    "EvalPreprocessing",
    "ImageSamples",
    "Samples",
    "TrainAugmentation",
    "Unreadable",
    "UnreadableImageError",
    "build_train_transform",
    "check_unreadable",
    "collate_samples",
    "eval_preprocessing",
    "find_samples",
    "image_folder_samples",
    "image_list_samples",
    "imagenet_class_names",
    "saved_data_config",
]
