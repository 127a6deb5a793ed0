"""ONNX Runtime execution providers that arrive as plugin libraries (onnxruntime >= 1.22's plugin-EP API).

A plugin EP ships as its own pip package beside the stock `onnxruntime` (for example `onnxruntime-ep-openvino`,
the `openvino` extra). It is invisible to `onnxruntime.get_available_providers()` until its library is registered;
once registered, its factory offers "EP devices" (the hardware it will drive), and a session uses it through
`SessionOptions.add_provider_for_devices`, not `providers=[name]`. This module registers each installed plugin once
per process (for onnxruntime and onnxruntime-genai), says which devices it offers and, when none, why, and builds
sessions that fall back to the CPU provider with one clear warning when the EP cannot take a model.

Full onnxruntime builds that compile an EP in (for example `onnxruntime-openvino`, which replaces the `onnxruntime`
module) need none of this: their provider is in `get_available_providers()` and is used by name.
"""

from __future__ import annotations

import importlib
import json
import threading
import warnings
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version

CPU = "CPUExecutionProvider"

# EP name -> (import name, distribution name) of the pip package that carries its plugin library.
PLUGIN_PACKAGES = {"OpenVINOExecutionProvider": ("onnxruntime_ep_openvino", "onnxruntime-ep-openvino")}
# Which of a plugin's devices a bare request ("openvino") takes: the accelerator first, the CPU last.
DEVICE_PREFERENCE = ("GPU", "NPU", "CPU")
# A compiled-in EP (not a plugin) takes the device kind as this provider option.
KIND_OPTION = {"OpenVINOExecutionProvider": "device_type"}
# Plugin EPs that run their own CPU thread pool and ignore SessionOptions.intra_op_num_threads: the load_config
# property that sets it. Without it OpenVINO used every core of a 16-core Xeon when asked for 2 threads, and the
# plugin ignores its older `num_of_threads` option (docs/npu.md).
THREADS_PROPERTY = {"OpenVINOExecutionProvider": "INFERENCE_NUM_THREADS"}


class ProviderFallback(UserWarning):
    """An execution provider could not take a model (or offers no device here); the CPU provider runs it."""


@dataclass
class PluginProvider:
    """One plugin EP package and what it offers on this machine. JSON keys are the field names."""

    name: str  # the EP name, e.g. "OpenVINOExecutionProvider"
    package: str
    version: str | None = None
    library: str | None = None
    registered: bool = False
    devices: list[str] = field(default_factory=list)  # e.g. ["CPU"], ["GPU", "NPU", "CPU"]
    note: str = ""  # why it offers no device, or why registration failed

    @property
    def usable(self) -> bool:
        return self.registered and bool(self.devices)


_lock = threading.Lock()
_plugins: dict[str, PluginProvider] | None = None
_genai_registered: set[str] = set()


def _ort_device_kind(ep_device) -> str:
    """"CPU" / "GPU" / "NPU": the plugin's own device name when it gives one, else the hardware type."""
    meta = dict(ep_device.ep_metadata)
    return str(meta.get("ov_device") or ep_device.device.type.name).split(".")[0].upper()


def _cpu_vendor(ort) -> str:
    for d in ort.get_ep_devices():
        if d.device.type == ort.OrtHardwareDeviceType.CPU:
            return f"{d.device.vendor} (vendor id {d.device.vendor_id:#06x})"
    return "unknown"


def _register(ort, ep_name: str, module_name: str, dist: str) -> PluginProvider | None:
    if ep_name in ort.get_available_providers():
        return None  # this onnxruntime build has the EP compiled in (e.g. onnxruntime-openvino): used by name
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None  # not installed: not listed at all
    plugin = PluginProvider(name=ep_name, package=dist)
    try:
        plugin.version = version(dist)
    except PackageNotFoundError:
        pass
    try:
        plugin.library = module.get_library_path()
        if ep_name not in {d.ep_name for d in ort.get_ep_devices()}:
            ort.register_execution_provider_library(ep_name, plugin.library)
        plugin.registered = True
    except Exception as exc:  # an onnxruntime without the plugin API, or a library that does not load
        plugin.note = f"could not register {plugin.library or module_name}: {exc}"
        return plugin
    kinds = {_ort_device_kind(d) for d in ort.get_ep_devices() if d.ep_name == ep_name}
    plugin.devices = [k for k in DEVICE_PREFERENCE if k in kinds] + sorted(kinds - set(DEVICE_PREFERENCE))
    if not plugin.devices:
        # The OpenVINO plugin's factory offers only Intel hardware (it compares the vendor id with 0x8086), so on
        # an AMD or ARM CPU it registers and then offers nothing, although OpenVINO itself could run there.
        plugin.note = (f"registered, but offers no device on this machine (CPU: {_cpu_vendor(ort)}); "
                       f"{dist} {plugin.version} serves Intel CPUs, GPUs and NPUs only")
    return plugin


def plugin_providers() -> dict[str, PluginProvider]:
    """Every installed plugin EP, registered with onnxruntime (once per process), by EP name."""
    global _plugins
    with _lock:
        if _plugins is None:
            try:
                import onnxruntime as ort
            except ImportError:
                _plugins = {}
                return _plugins
            found = {}
            for ep_name, (module_name, dist) in PLUGIN_PACKAGES.items():
                plugin = _register(ort, ep_name, module_name, dist)
                if plugin is not None:
                    found[ep_name] = plugin
            _plugins = found
        return _plugins


def available_providers() -> list[str]:
    """onnxruntime's built-in providers plus the plugin EPs that offer a device here."""
    try:
        import onnxruntime as ort

        plugins = plugin_providers()
        # Once registered, a plugin EP that offers a device is listed by onnxruntime too (with variants such as
        # "OpenVINOExecutionProvider.AUTO"): it is reported once, below, by its EP name.
        names = [n for n in ort.get_available_providers() if n.split(".")[0] not in plugins]
    except Exception:
        return []
    return names + [p.name for p in plugins.values() if p.usable]


def unusable_plugin(provider: str) -> PluginProvider | None:
    """The installed plugin for `provider` when it offers no device here (so a request should fall back)."""
    plugin = plugin_providers().get(provider)
    return plugin if plugin is not None and not plugin.usable else None


def fallback_warning(provider: str, reason: str) -> str:
    """Warn once, in one line, that `provider` is not used and the CPU provider is; return the message."""
    message = f"{provider} not used, running on {CPU}: {reason}"
    warnings.warn(message, ProviderFallback, stacklevel=3)
    return message


def _ep_device(ort, provider: str, kind: str | None):
    devices = [d for d in ort.get_ep_devices() if d.ep_name == provider]
    for want in ([kind.upper()] if kind else list(DEVICE_PREFERENCE)):
        for d in devices:
            if _ort_device_kind(d) == want:
                return d
    raise ValueError(f"{provider} offers no {kind or 'device'} here (it offers: "
                     f"{', '.join(_ort_device_kind(d) for d in devices) or 'none'})")


def session_options_for(provider: str, options, kind: str | None = None, ep_options: dict | None = None) -> list:
    """Put `provider` on the onnxruntime SessionOptions `options`; return the `providers=` list to pass with it.

    A plugin EP is added to the options for one of its devices (`kind`: "CPU", "GPU" or "NPU"; default the first
    of DEVICE_PREFERENCE it offers) and the providers list is empty; a built-in provider is passed by name.
    """
    import onnxruntime as ort

    ep_options = dict(ep_options or {})
    plugin = plugin_providers().get(provider)
    if plugin is not None and plugin.registered:
        # By device, never by name: onnxruntime lists a registered plugin EP among its available providers, but a
        # session given only its name silently runs on the CPU provider (seen with OpenVINO on an Intel CPU).
        device = _ep_device(ort, provider, kind)
        threads = options.intra_op_num_threads
        if provider in THREADS_PROPERTY and threads > 0 and _ort_device_kind(device) == "CPU":
            ep_options.setdefault("load_config", json.dumps({"CPU": {THREADS_PROPERTY[provider]: str(threads)}}))
        options.add_provider_for_devices([device], ep_options)
        return []
    if kind and provider in KIND_OPTION:  # a built-in EP takes its device as a provider option
        ep_options[KIND_OPTION[provider]] = kind
    return [(provider, ep_options)] if ep_options else [provider]


def inference_session(path: str, options_factory, provider: str, kind: str | None = None):
    """An onnxruntime InferenceSession on `provider`, or on the CPU provider (with a ProviderFallback warning)
    when the provider cannot take the model. `options_factory()` makes fresh SessionOptions for each attempt.

    Returns (session, provider actually used, fallback message or "").
    """
    import onnxruntime as ort

    options = options_factory()
    if provider == CPU:
        return ort.InferenceSession(path, options, providers=[CPU]), CPU, ""
    try:
        providers = session_options_for(provider, options, kind)
        session = ort.InferenceSession(path, options, providers=providers or None)
    except Exception as exc:
        reason = " ".join(str(exc).split())[:300]
        note = fallback_warning(provider, f"it could not take this model ({reason})")
        return ort.InferenceSession(path, options_factory(), providers=[CPU]), CPU, note
    if provider not in session.get_providers():
        # onnxruntime's Python API only logs when a listed provider fails to start, and runs on the CPU: say so.
        what = f"its {kind} device" if kind else "it"
        note = fallback_warning(provider, f"onnxruntime could not start {what} for this session (see its log)")
        return session, CPU, note
    return session, provider, ""


def register_for_genai(provider: str) -> bool:
    """Register `provider`'s plugin library with onnxruntime-genai too (once per process); True when it is one."""
    plugin = plugin_providers().get(provider)
    if plugin is None or not plugin.registered:
        return False
    with _lock:
        if provider not in _genai_registered:
            import onnxruntime_genai as og

            try:
                og.register_execution_provider_library(provider, plugin.library)
            except Exception as exc:  # registered already by the application: that is what we wanted
                if "already registered" not in str(exc):
                    raise
            _genai_registered.add(provider)
    return True


__all__ = ["CPU", "DEVICE_PREFERENCE", "PLUGIN_PACKAGES", "PluginProvider", "ProviderFallback",
           "available_providers", "fallback_warning", "inference_session", "plugin_providers",
           "register_for_genai", "session_options_for", "unusable_plugin"]
