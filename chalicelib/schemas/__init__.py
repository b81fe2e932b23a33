"""API models (pydantic): what requests may carry and what responses promise.

They are the single source of both validation and the OpenAPI document. Request models reject
unknown fields; stored models live in `chalicelib/store` and never leave it.

Schema modules evaluate their annotations eagerly (no `from __future__ import annotations`):
with string annotations pydantic compiles and evaluates each one when a class is made, ~20 ms of
every cold start (bench/bench_cold_start.py).
"""
