"""The model zoo (SPEC C11): every model the dissertation trains, in the shared registry.

- :mod:`~layerscope.models.vgg`: ``vgg11``, ``vgg13``, ``vgg16``, ``vgg19`` (``width``,
  ``dilation``).
- :mod:`~layerscope.models.resnet`: ``resnet18``, ``resnet34``, ``resnet50`` (ImageNet stem) and
  ``resnet18_cifar``, ``resnet34_cifar`` (CIFAR stem); ``stem``, ``skip``, ``attention``
  (``"se"``, ``"spatial"``, ``"cbam"``), ``width``.
- :mod:`~layerscope.models.multipath`: ``mpnet18``, ``mpnet36`` (dissertation 10.2).
- :mod:`~layerscope.models.mlp`: ``mlp``; :mod:`~layerscope.models.autoencoder`:
  ``conv_autoencoder`` (dissertation table 1).
- :mod:`~layerscope.models.small`: ``demo_cnn`` (the model of ``layerscope demo``).

All are initialised Kaiming-He (8.3.1). ``create_model("tv:NAME")`` / ``create_model("timm:NAME")``
build torchvision / timm models when those packages can be imported.
"""

from layerscope.models._common import init_kaiming_, scale_channels
from layerscope.models._factory import (
    ModelOptionError,
    ModelUnavailableError,
    create_model,
    list_models,
    register_model,
)
from layerscope.models.attention import CBAM, SpatialAttention, SqueezeExcitation
from layerscope.models.autoencoder import ConvAutoencoder
from layerscope.models.mlp import MLP
from layerscope.models.multipath import MPNet, MultipathBlock
from layerscope.models.resnet import BasicBlock, Bottleneck, ResNet
from layerscope.models.small import demo_cnn
from layerscope.models.vgg import VGG, VGG_CONFIGS
from layerscope.registry import MODELS

__all__ = [
    "CBAM",
    "MLP",
    "MODELS",
    "VGG",
    "VGG_CONFIGS",
    "BasicBlock",
    "Bottleneck",
    "ConvAutoencoder",
    "MPNet",
    "ModelOptionError",
    "ModelUnavailableError",
    "MultipathBlock",
    "ResNet",
    "SpatialAttention",
    "SqueezeExcitation",
    "create_model",
    "demo_cnn",
    "init_kaiming_",
    "list_models",
    "register_model",
    "scale_channels",
]
