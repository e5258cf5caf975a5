"""A pretrained model's processor, also where its video half cannot load.

transformers' Qwen2-VL and Qwen2.5-VL processors (the backbones of cadrille and Zero-to-CAD)
hold an image processor, a tokenizer and a video processor, and the video processor needs
torchvision, which this project does not install. A policy only ever shows images, so
:func:`load_processor` falls back to the same processor class without its video processor
(:func:`image_only`): the image and text code it runs is the real processor's, and the image
processor is the PIL one that transformers picks without torchvision.
"""

from __future__ import annotations

import functools
import json
import os

from transformers import AutoConfig, AutoProcessor

VIDEO_FAILURES = ("video processor", "torchvision")
"""Words of the errors ``AutoProcessor`` raises when it cannot build a processor's video half."""


def load_processor(path: str, base: str | None = None):
    """``AutoProcessor.from_pretrained(path)``, or, when only its video processor fails to load,
    the :func:`image_only` form of the processor of ``base``'s model type (``base`` defaults to
    ``path``; a checkpoint folder holds the processor but not the base model's config). A
    processor saved in its image-only form loads in that form."""
    if not str(saved_class_name(path)).startswith("ImageOnly"):
        try:
            return AutoProcessor.from_pretrained(path)
        except (ImportError, OSError, ValueError) as error:
            if not any(word in str(error).lower() for word in VIDEO_FAILURES):
                raise
    return image_only(*processor_classes_of(base or path)).from_pretrained(path)


def saved_class_name(path: str) -> str | None:
    """The ``processor_class`` a processor saved in the folder ``path`` names, or None."""
    file = os.path.join(path, "processor_config.json")
    if not os.path.isfile(file):
        return None
    with open(file, encoding="utf-8") as fh:
        return json.load(fh).get("processor_class")


def processor_classes_of(model: str):
    """``(processor class, config class)``: what ``AutoProcessor`` maps the model type of ``model``
    (a folder or a repository id) to, and that model's config class."""
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

    config_class = type(AutoConfig.from_pretrained(model))
    try:
        return PROCESSOR_MAPPING[config_class], config_class
    except KeyError:
        raise ValueError(f"{model!r}: no processor is known for model type "
                         f"{config_class.model_type!r}") from None


@functools.cache
def image_only(processor_class, config_class):
    """``processor_class`` without its video processor, registered for ``AutoProcessor`` under
    ``config_class`` so that a processor saved from it loads again by its saved class name (an
    image-only class comes back as it is)."""
    if getattr(processor_class, "image_only", False):
        return processor_class

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        # no video_processor in this signature: ProcessorMixin then neither wants nor checks one
        kwargs["chat_template"] = chat_template
        processor_class.__init__(self, image_processor, tokenizer, None, **kwargs)

    cls = type(f"ImageOnly{processor_class.__name__}", (processor_class,),
               {"__init__": __init__, "__module__": __name__, "image_only": True})
    AutoProcessor.register(config_class, cls, exist_ok=True)
    return cls
