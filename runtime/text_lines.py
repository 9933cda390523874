"""Split bytes into lines of UTF-8 text, naming the line of any undecodable byte (never a silent loss)."""
from modmt.runtime.errors import ModmtError


def decode_line(raw: bytes, number: int, label: str, hint: str, errors: str = "strict") -> str:
    """One line (its b"\\n" already cut or not) as text without its ending; errors='replace' swaps bad bytes."""
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    try:
        return raw.decode("utf-8", errors="strict" if errors == "strict" else "replace").rstrip("\r")
    except UnicodeDecodeError as e:
        raise ModmtError(f"{label}:{number}: not valid UTF-8 ({e.reason} at byte {e.start}); {hint}") from None


def decode_lines(data: bytes, label: str, hint: str, errors: str = "strict") -> list[str]:
    """Lines without their endings (\\n or \\r\\n); errors='replace' swaps bad bytes for U+FFFD instead."""
    raw = data.split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()
    return [decode_line(line, number, label, hint, errors) for number, line in enumerate(raw, 1)]
