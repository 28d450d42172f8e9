"""The `deltalake` package's storage options for the test servers that
scripts/test starts on loopback (moto, Azurite), read from the same
environment variables quadrant reads."""

import os


def storage_options(uri):
    if uri.startswith("s3://"):
        return {
            "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
            "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
            "AWS_ALLOW_HTTP": "true",
            # moto honours If-None-Match: delta-rs commits with it.
            "AWS_CONDITIONAL_PUT": "etag",
        }
    if uri.startswith("az://"):
        return {"AZURE_STORAGE_USE_EMULATOR": "true", "AZURE_ALLOW_HTTP": "true"}
    return None
