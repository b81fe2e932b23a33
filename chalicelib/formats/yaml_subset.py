"""The subset of YAML a YOLO `data.yaml` uses, read without PyYAML (not in the Lambda package).

Top-level `key: value` lines where a value is a plain or quoted scalar, a flow list `[a, b]` or
mapping `{0: a}`, or an indented block of `- item` or `key: value` lines; `#` comments. Plain
integers become `int` (so `names` keys are class indexes), `~`/`null`/empty become None, every other
plain scalar stays a string. Anything else (anchors, tags, block scalars, nesting deeper than one
block) is refused with the file and line, never guessed.
"""
from __future__ import annotations

import re
from typing import Any, Callable

from chalicelib.errors import BadRequestError

Fail = Callable[[int, str], BadRequestError]

def read_yaml(name: str, data: bytes) -> dict[str, Any]:
    """The top-level mapping of `data`; raises `BadRequestError` naming `name` and the line on
    anything outside the subset."""
    def fail(number: int, why: str) -> BadRequestError:
        return BadRequestError(f"{name}: line {number}: {why}", [{"file": name, "reason": why, "line": number}])

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRequestError(f"{name}: not UTF-8 text", [{"file": name, "reason": "not UTF-8"}]) from exc
    config: dict[str, Any] = {}
    block: str | None = None  # the key whose indented lines come next
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _strip_comment(raw).rstrip()
        if not line.strip() or line.strip() == "---":
            continue
        if line[0] in " \t-":
            if block is None:
                raise fail(number, "indented line outside a block")
            item = line.strip()
            if item.startswith("- ") or item == "-":
                items = config[block] = [] if config[block] is None else config[block]
                if not isinstance(items, list):
                    raise fail(number, "a list item in a mapping")
                items.append(_scalar(item[1:].strip(), number, fail))
                continue
            entries = config[block] = {} if config[block] is None else config[block]
            k, sep, v = _split_key(item)
            if not isinstance(entries, dict):
                raise fail(number, "a mapping entry in a list")
            if not sep:
                raise fail(number, "expected `key: value`")
            entries[_scalar(k, number, fail)] = _scalar(v, number, fail)
            continue
        key, sep, value = _split_key(line)
        if not sep:
            raise fail(number, "expected `key: value`")
        key = _scalar(key, number, fail)
        config[key] = _value(value, number, fail) if value else None
        block = None if value else key
    return config


def _strip_comment(line: str) -> str:
    quote = None
    for n, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
            elif char == "\\" and quote == '"':
                continue
        elif char in "'\"":
            quote = char
        elif char == "#" and (n == 0 or line[n - 1] in " \t"):
            return line[:n]
    return line


def _split_key(text: str) -> tuple[str, str, str]:
    quote = None
    for n, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == ":" and (n + 1 == len(text) or text[n + 1] in " \t"):
            return text[:n].strip(), ":", text[n + 1:].strip()
    return text, "", ""


def _split_flow(text: str) -> list[str]:
    items, quote, start = [], None, 0
    for n, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == ",":
            items.append(text[start:n].strip())
            start = n + 1
    last = text[start:].strip()
    return items + [last] if last else items


def _value(text: str, number: int, fail: Fail) -> Any:
    if text.startswith("[") and text.endswith("]"):
        return [_scalar(item, number, fail) for item in _split_flow(text[1:-1])]
    if text.startswith("{") and text.endswith("}"):
        mapping = {}
        for item in _split_flow(text[1:-1]):
            k, sep, v = _split_key(item)
            if not sep:
                raise fail(number, f"expected `key: value` in {text!r:.80}")
            mapping[_scalar(k, number, fail)] = _scalar(v, number, fail)
        return mapping
    return _scalar(text, number, fail)


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", '"': '"', "\\": "\\", "/": "/", " ": " "}


def _scalar(text: str, number: int, fail: Fail) -> Any:
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        body, out, n = text[1:-1], [], 0
        while n < len(body):
            char = body[n]
            if char != "\\":
                out.append(char)
                n += 1
                continue
            code = body[n + 1:n + 2]
            width = {"x": 2, "u": 4, "U": 8}.get(code)
            if width:
                try:
                    out.append(chr(int(body[n + 2:n + 2 + width], 16)))
                except ValueError as exc:
                    raise fail(number, f"bad escape in {text!r:.80}") from exc
                n += 2 + width
            elif code in _ESCAPES:
                out.append(_ESCAPES[code])
                n += 2
            else:
                raise fail(number, f"bad escape in {text!r:.80}")
        return "".join(out)
    if text[:1] in ("'", '"', "[", "{", "&", "*", "!", "|", ">"):
        raise fail(number, f"unsupported YAML: {text!r:.80}")
    if re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    if text in ("", "~", "null"):
        return None
    return text
