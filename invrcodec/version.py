"""The package's version, on the ground floor: the encoder writes it into a file's metadata and ``invr-probe
--version`` prints it, without importing the public face above them (:mod:`invrcodec`, which hands it on)."""

__version__ = "0.1.0"
