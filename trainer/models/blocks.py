"""The seed's convolution block (ypwhs/captcha_break), shared by the architectures."""
from keras import layers


def conv_block(x, filters, pool_size):
    """Two conv3x3-BN-ReLU, then max-pool by `pool_size`."""
    for _ in range(2):
        x = layers.Conv2D(filters, 3, padding="same", kernel_initializer="he_uniform")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
    return layers.MaxPooling2D(pool_size)(x)


def filters(block):
    """Filters of block `block` (0-based): 32, 64, 128, 256, 256, ..."""
    return 32 * 2 ** min(block, 3)

