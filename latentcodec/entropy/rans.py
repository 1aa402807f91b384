"""The rANS glue every built-in entropy coder shares: constriction models, words, one stack.

constriction's ``AnsCoder`` is a stack: the last symbols pushed are the first popped.
:class:`ReverseEncoder` lets a coder list its symbols in *decoding* order and encodes
them in reverse, so the decoder simply pops them in the order they were added.  Every
model handed to constriction is built from integers (``freq / 2**bits`` is an exact
dyadic float), so every machine decodes the same symbols.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import CorruptStreamError


def words_to_bytes(words: np.ndarray) -> bytes:
    """Little-endian 32-bit words with trailing zero bytes dropped (restored on read)."""
    return np.asarray(words, dtype="<u4").tobytes().rstrip(b"\x00")


def bytes_to_words(data: bytes) -> np.ndarray:
    """Inverse of :func:`words_to_bytes`."""
    padded = data + b"\x00" * (-len(data) % 4)
    return np.frombuffer(padded, dtype="<u4").astype(np.uint32)


def ans_decoder(data: bytes) -> Any:
    """A constriction ``AnsCoder`` over serialised words; malformed words are a stream error."""
    import constriction

    try:
        return constriction.stream.stack.AnsCoder(bytes_to_words(data))
    except (ValueError, RuntimeError) as exc:  # e.g. "never ends in a zero word"
        raise CorruptStreamError(f"ANS words are malformed ({exc})") from exc


def categorical(freqs: np.ndarray, precision_bits: int) -> Any:
    """constriction's ``Categorical`` for integer frequencies summing to ``2**precision_bits``."""
    import constriction

    probs = np.asarray(freqs).astype(np.float64) / float(1 << precision_bits)  # exact dyadic values
    return constriction.stream.model.Categorical(probs, perfect=False)


def uniform(size: int | None = None) -> Any:
    """constriction's ``Uniform`` over ``0..size-1`` (``None``: the size is a per-symbol parameter)."""
    import constriction

    return constriction.stream.model.Uniform() if size is None else constriction.stream.model.Uniform(int(size))


class ReverseEncoder:
    """Collects ``(symbols, model[, per-symbol params])`` in decoding order; encodes them in reverse.

    >>> import numpy as np
    >>> enc = ReverseEncoder()
    >>> enc.add(np.array([1, 0, 2]), uniform(3))
    >>> enc.add(np.array([5]), uniform(8))
    >>> dec = ans_decoder(enc.finish())
    >>> dec.decode(uniform(3), 3).tolist(), dec.decode(uniform(8), 1).tolist()
    ([1, 0, 2], [5])
    """

    def __init__(self) -> None:
        self.items: list[tuple[np.ndarray, Any, np.ndarray | None]] = []

    def add(self, symbols: np.ndarray, model: Any, params: np.ndarray | None = None) -> None:
        """Queue ``symbols`` (empty arrays are skipped: they take no words)."""
        if symbols.size:
            self.items.append((np.asarray(symbols).astype(np.int32), model, params))

    def finish(self) -> bytes:
        """The ANS words of everything queued, as bytes (see :func:`words_to_bytes`)."""
        import constriction

        coder = constriction.stream.stack.AnsCoder()
        for symbols, model, params in reversed(self.items):
            if params is None:
                coder.encode_reverse(symbols, model)
            else:
                coder.encode_reverse(symbols, model, params)
        return words_to_bytes(coder.get_compressed())
