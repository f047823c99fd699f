"""Networks shared by every model."""

from lightning_modules.nets.dcgan import ConvDiscriminator, ConvEncoder, ConvGenerator
from lightning_modules.nets.factory import (
    VectorDiscriminator,
    build_discriminator,
    build_encoder,
    build_generator,
    check_data_shape,
    image_shape,
    is_image,
)
from lightning_modules.nets.infogan_cr import InfoGANCRGenerator, InfoGANCRTrunk
from lightning_modules.nets.joint import JointDiscriminator
from lightning_modules.nets.mlp import MLP
from lightning_modules.nets.spatial_broadcast import SpatialBroadcastDecoder

__all__ = [
    "ConvDiscriminator", "ConvEncoder", "ConvGenerator", "InfoGANCRGenerator", "InfoGANCRTrunk", "JointDiscriminator", "MLP",
    "SpatialBroadcastDecoder", "VectorDiscriminator", "build_discriminator", "build_encoder", "build_generator", "check_data_shape", "image_shape", "is_image",
]
