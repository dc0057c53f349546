"""Loading the s3cache guest component with wasmtime-py and calling its exports.

One `Guest` compiles the component once (and keeps the compiled code in a cache directory, so later
processes load it in milliseconds instead of compiling for seconds) and links its imports: WASI
preview 2 from wasmtime, and the four s3cache interfaces from `host_imports`. Each call gets a fresh
store and instance that sees exactly the preopens it is given: no environment, no arguments, no
stdio, no network (wasmtime's WASI denies every socket address unless told otherwise), and a memory
cap.
"""

import hashlib
import importlib.metadata
import os
from pathlib import Path

import wasmtime
from wasmtime import component as wc

from host_imports import HostImports, Session
from wit_values import enable_fast_bytes, host_function, variant_case

REPO = Path(__file__).resolve().parents[2]
COMPONENT = REPO / "host" / "embedded" / "s3cache-guest.wasm"
PACKAGE = "s3cache:guest"


class GuestError(Exception):
    """The guest returned the `error` variant of the WIT contract: `case` is its tag
    (`rejected-member`, `corrupt-stream`, ...) and `payload` its value."""

    def __init__(self, case, payload):
        super().__init__(f"{case}: {payload!r}")
        self.case, self.payload = case, payload


def load_component(engine, path, cache_dir):
    """The compiled component: from `cache_dir` when a copy compiled by this wasmtime for these exact
    bytes is there, else compiled (and saved there)."""
    wasm = Path(path).read_bytes()
    if cache_dir is None:
        return wc.Component(engine, wasm)
    tag = hashlib.sha256(wasm + importlib.metadata.version("wasmtime").encode()).hexdigest()[:16]
    compiled = Path(cache_dir) / f"guest-py-{tag}.cwasm"
    if compiled.exists():
        try:
            return wc.Component.deserialize_file(engine, str(compiled))
        except wasmtime.WasmtimeError:
            pass
    component = wc.Component(engine, wasm)
    compiled.parent.mkdir(parents=True, exist_ok=True)
    temporary = compiled.with_suffix(f".tmp-{os.getpid()}")
    temporary.write_bytes(component.serialize())
    temporary.replace(compiled)
    return component


class Guest:
    """The guest, ready to instantiate. `call(preopens, interface, function, *args)` runs one export in
    a fresh instance and returns its `ok` value or raises `GuestError`."""

    def __init__(self, component=COMPONENT, cache_dir=None, memory_bytes=1 << 30, fast_bytes=True, verbose=False):
        if fast_bytes:
            enable_fast_bytes()
        self.engine = wasmtime.Engine()
        self.component = load_component(self.engine, component, cache_dir)
        self.memory_bytes = memory_bytes
        self.verbose = verbose
        self._session = None
        imports = self.component.type.imports(self.engine)
        # The package version the component was built against, e.g. `0.2.0`.
        self.version = next(name.split("@")[1] for name in imports if name.startswith(PACKAGE + "/"))
        write_op = self._import_type(imports, "host-files", "write").params[1][1].element
        host = HostImports(lambda: self._session, write_op)
        self.linker = wc.Linker(self.engine)
        self.linker.add_wasip2()
        with self.linker.root() as root:
            for interface, functions in host.functions().items():
                with root.add_instance(self.interface(interface)) as instance:
                    for name, implementation in functions.items():
                        instance.add_func(name, host_function(self._import_type(imports, interface, name), implementation))

    def interface(self, name):
        return f"{PACKAGE}/{name}@{self.version}"

    def _import_type(self, imports, interface, function):
        return imports[self.interface(interface)].ty.exports(self.engine)[function].ty

    def call(self, preopens, interface, function, *args, sink=None, source=None, env=None):
        """Runs `interface.function(*args)` in a new instance that sees `preopens`; `sink` receives
        what the guest writes to `archive-io`, `source(max)` answers its reads."""
        store = wasmtime.Store(self.engine)
        store.set_limits(memory_size=self.memory_bytes)
        wasi = wasmtime.WasiConfig()
        for preopen in preopens:
            wasi.preopen_dir(preopen.host, preopen.guest, preopen.writable)
        store.set_wasi(wasi)
        session = Session(preopens, env=env, verbose=self.verbose)
        session.sink, session.source = sink, source
        self._session = session
        try:
            instance = self.linker.instantiate(store, self.component)
            exported = instance.get_export_index(store, self.interface(interface))
            func = instance.get_func(store, instance.get_export_index(store, function, exported))
            result_type = func.type(store).result
            value = func(store, *args)
        finally:
            self._session = None
            session.close()
        tag, payload = variant_case(result_type, value)
        if tag == "err":
            case, detail = variant_case(result_type.err, payload)
            raise GuestError(case, detail)
        return payload
