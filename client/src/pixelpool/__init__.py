"""pixelpool's Python SDK: a typed client of the HTTP API (`Client`), resumable uploads
(`Uploader`), multipart uploads, downloads, and the ML-pipeline signer (`Pipeline`)."""
from pixelpool.client import Client
from pixelpool.errors import ApiError, ConfigError, PixelpoolError, TimeoutError, TransferError, TransportError
from pixelpool.signing import Pipeline, Signer
from pixelpool.uploads import Uploader, UploadResult

__all__ = ["ApiError", "Client", "ConfigError", "Pipeline", "PixelpoolError", "Signer", "TimeoutError",
           "TransferError", "TransportError", "UploadResult", "Uploader"]
__version__ = "0.1.0"
