
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

# Characters that make a name render as something it is not: they reorder the text around them.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Controls (NUL, newlines, escapes), lone surrogates, line and paragraph separators.
UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


def _plain_text(value: str) -> str:
    """The one text rule for names: printable characters only, no bidirectional controls."""
    for position, char in enumerate(value):
        if char in BIDI_CONTROLS:
            raise ValueError(f"contains U+{ord(char):04X} (a bidirectional control) at position {position}; "
                             "names are plain text")
        if unicodedata.category(char) in UNPRINTABLE_CATEGORIES:
            raise ValueError(f"contains U+{ord(char):04X} (a control character) at position {position}; "
                             "names are plain text")
    return value


# Names people give things (tags, labels, categories, projects, tasks, saved filters).
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
                 AfterValidator(_plain_text)]
ShortName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
                      AfterValidator(_plain_text)]


class RequestModel(BaseModel):
    """Base of every request body and query: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, defer_build=True)


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True, defer_build=True)


class PageQuery(RequestModel):
    page: int = Field(default=1, ge=1, le=10**9, description="1-based page number")
    page_size: int = Field(default=50, ge=1, le=200, description="items per page, at most 200")


class PageMeta(ResponseModel):
    total: int
    page: int
    page_size: int
