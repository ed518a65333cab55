"""The few DER structures `cryptography` does not build for us: an encrypted PKCS#8 with a chosen
PBKDF2 iteration count, and a PKCS#12 MAC with one (RFC 7292 B.2). Definite lengths only."""

from __future__ import annotations

from dataclasses import dataclass

from pki.errors import PkiError

SEQUENCE, INTEGER, OCTET_STRING, NULL, OID, CONTEXT_0 = 0x30, 0x02, 0x04, 0x05, 0x06, 0xA0


def tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def seq(*items: bytes) -> bytes:
    return tlv(SEQUENCE, b"".join(items))


def integer(value: int) -> bytes:
    return tlv(INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=False))


def octets(value: bytes) -> bytes:
    return tlv(OCTET_STRING, value)


def null() -> bytes:
    return tlv(NULL, b"")


def oid(dotted: str) -> bytes:
    first, second, *rest = (int(p) for p in dotted.split("."))
    body = bytearray()
    for arc in (40 * first + second, *rest):
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    return tlv(OID, bytes(body))


@dataclass(frozen=True)
class Node:
    tag: int
    value: bytes
    raw: bytes  # the whole TLV

    def children(self, what: str = "input") -> list[Node]:
        return parse_all(self.value, what)

    def as_int(self) -> int:
        return int.from_bytes(self.value, "big", signed=True)


def parse_one(data: bytes, what: str = "input") -> tuple[Node, bytes]:
    """The first TLV of `data` and what follows it; PkiError on anything not definite-length DER."""
    if len(data) < 2:
        raise PkiError(f"{what}: truncated DER")
    tag, first = data[0], data[1]
    offset = 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or len(data) < 2 + count:
            raise PkiError(f"{what}: malformed DER length")
        length = int.from_bytes(data[2:2 + count], "big")
        offset += count
    end = offset + length
    if end > len(data):
        raise PkiError(f"{what}: truncated DER")
    return Node(tag, data[offset:end], data[:end]), data[end:]


def parse_all(data: bytes, what: str = "input") -> list[Node]:
    nodes = []
    while data:
        node, data = parse_one(data, what)
        nodes.append(node)
    return nodes


def decode_oid(value: bytes) -> str:
    arcs, arc = [], 0
    for byte in value:
        arc = (arc << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(arc)
            arc = 0
    if not arcs:
        return ""
    first = min(arcs[0] // 40, 2)
    return ".".join(map(str, [first, arcs[0] - 40 * first, *arcs[1:]]))


def oids_in(data: bytes, what: str = "input", depth: int = 0) -> list[str]:
    """Every OBJECT IDENTIFIER in a DER tree, in order (constructed nodes and OCTET STRINGs that
    hold DER are descended into; anything else is skipped)."""
    out: list[str] = []
    if depth > 16:
        return out
    try:
        nodes = parse_all(data, what)
    except PkiError:
        return out
    for node in nodes:
        if node.tag == OID:
            out.append(decode_oid(node.value))
        elif node.tag & 0x20 or node.tag == OCTET_STRING:
            out += oids_in(node.value, what, depth + 1)
    return out
