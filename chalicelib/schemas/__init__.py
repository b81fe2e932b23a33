"""API models (pydantic): what requests may carry and what responses promise.

They are the single source of both validation and the OpenAPI document. Request models reject
unknown fields; stored models live in `chalicelib/store` and never leave it.
"""
