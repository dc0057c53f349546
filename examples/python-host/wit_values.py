"""WIT values in wasmtime-py, made uniform.

wasmtime-py (50.x) represents a `result` or `variant` as a bare Python value when its cases map to
different Python types, and as `Variant(tag, payload)` only when two cases would be ambiguous. So
`host-files.read-dir` (two records) must return `Variant("ok", listing)` while `host-files.write`
(`_` or a record) returns `None`, and adding one case to a variant can flip every call from one form
to the other. This module decides the form from the component's own types at run time, so the rest
of the host always speaks in terms of tags: it returns values or raises `WitErr`, and reads variants
as `(tag, payload)`.

It also gives `list<u8>` a fast path. wasmtime-py converts lists element by element through ctypes,
about 1–2.5 MB/s for bytes; the C API stores each element as a 32-byte `wasmtime_component_val_t`,
so copying the bytes out of (or into) that array with one strided slice is C speed.
`enable_fast_bytes()` installs it; without it everything still works, only slowly.
"""

import ctypes

from wasmtime import _ffi as ffi
from wasmtime import component as wc


class WitErr(Exception):
    """Raised by a host function to return the `err` case of its `result`."""

    def __init__(self, payload=None):
        super().__init__(payload)
        self.payload = payload


def record(**fields):
    """A WIT record from keyword arguments (`guest_dir=...` becomes the field `guest-dir`)."""
    value = wc.Record()
    for name, field_value in fields.items():
        setattr(value, name.replace("_", "-"), field_value)
    return value


def field(value, name):
    """A record's field by its Python name (`link_target` reads `link-target`)."""
    return getattr(value, name.replace("_", "-"))


def _classes(ty):
    classes = set()
    if ty is None:
        classes.add(type(None))
    else:
        ty.add_classes(classes)
    return tuple(classes)


def variant_case(ty, value):
    """`(tag, payload)` of a value of the variant (or option, or result) type `ty`."""
    if ty._tagged():
        return value.tag, value.payload
    for name, case in ty._cases():
        if case is None:
            if value is None:
                return name, None
        elif isinstance(value, _classes(case)):
            return name, value
    raise TypeError(f"{value!r} is no case of {ty}")


def lower_result(ty, ok, payload):
    """The wasmtime-py value of `ok(payload)` or `err(payload)` of the result type `ty`."""
    tag = "ok" if ok else "err"
    return wc.Variant(tag, payload) if ty._tagged() else payload


def host_function(func_type, implementation):
    """Wraps a host implementation for `LinkerInstance.add_func`: `implementation(*args)` returns the
    `ok` value or raises `WitErr(err)`, whatever form wasmtime-py expects for this function."""
    result = func_type.result

    def call(_store, *args):
        if not isinstance(result, wc.ResultType):
            return implementation(*args)
        try:
            return lower_result(result, True, implementation(*args))
        except WitErr as err:
            return lower_result(result, False, err.payload)

    return call


_VAL_SIZE = ctypes.sizeof(ffi.wasmtime_component_val_t)
_PAYLOAD_OFFSET = ffi.wasmtime_component_val_t.of.offset


def _element_bytes(vallist):
    count = vallist.size
    if count == 0:
        return None, 0
    address = ctypes.cast(vallist.data, ctypes.c_void_p).value
    return memoryview((ctypes.c_ubyte * (count * _VAL_SIZE)).from_address(address)).cast("B"), count


def _bytes_from_c(self, c):
    if not self._is_bytes():
        return _slow_from_c(self, c)
    try:
        raw, _ = _element_bytes(c.of.list)
        return b"" if raw is None else bytes(raw[_PAYLOAD_OFFSET::_VAL_SIZE])
    finally:
        ffi.wasmtime_component_vallist_delete(ctypes.byref(c.of.list))


def _bytes_to_c(self, store, val, ptr):
    if not self._is_bytes():
        return _slow_to_c(self, store, val, ptr)
    if not isinstance(val, (bytes, bytearray, memoryview)):
        raise TypeError("expected bytes value")
    vallist = ffi.wasmtime_component_vallist_t()
    ffi.wasmtime_component_vallist_new_uninit(vallist, len(val))
    raw, count = _element_bytes(vallist)
    if raw is not None:
        raw[0::_VAL_SIZE] = bytes([ffi.WASMTIME_COMPONENT_U8.value]) * count
        raw[_PAYLOAD_OFFSET::_VAL_SIZE] = bytes(val)
    ptr.contents.kind = ffi.WASMTIME_COMPONENT_LIST
    ptr.contents.of.list = vallist


_slow_from_c = wc.ListType.convert_from_c
_slow_to_c = wc.ListType.convert_to_c


def enable_fast_bytes():
    """Makes `list<u8>` cross the boundary as one strided copy instead of one ctypes call per byte."""
    wc.ListType.convert_from_c = _bytes_from_c
    wc.ListType.convert_to_c = _bytes_to_c
