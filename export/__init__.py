"""modmt.export: merge a direction's two adapters into static deltas, fold them into the base, export to ONNX.

    from modmt.export import ExportOptions, export_direction
"""
from modmt.runtime.lazy import lazy_attributes

_EXPORTS = {
    "ExportOptions": "modmt.export.direction", "export_direction": "modmt.export.direction",
    "export_shared_direction": "modmt.export.shared_base", "export_shared_base": "modmt.export.shared_base",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_attributes('modmt.export', _EXPORTS)
