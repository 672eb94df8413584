"""An import-linter contract type the built-in ones lack: modules that may import only the
standard library (and each other). Registered in pyproject.toml's ``[tool.importlinter]``."""

from __future__ import annotations

import sys

from importlinter import Contract, ContractCheck, fields, output


class StandardLibraryOnly(Contract):
    """``source_modules`` import nothing but the standard library and ``allowed_modules``.

    Needs ``include_external_packages = true``: grimp then records every import of a module
    outside the root packages (the standard library's included) under its top-level name."""

    source_modules = fields.ListField(subfield=fields.ModuleField())
    allowed_modules = fields.ListField(subfield=fields.ModuleField(), required=False)

    def check(self, graph, verbose: bool) -> ContractCheck:
        allowed = {m.name for m in self.allowed_modules or ()} | {m.name for m in self.source_modules}
        broken = []
        for module in sorted(m.name for m in self.source_modules):
            if module not in graph.modules:
                broken.append((module, "(no such module)"))
                continue
            for imported in sorted(graph.find_modules_directly_imported_by(module)):
                if imported.split(".")[0] in sys.stdlib_module_names or imported in allowed:
                    continue
                broken.append((module, imported))
        return ContractCheck(kept=not broken, metadata={"broken": broken})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for module, imported in check.metadata["broken"]:
            output.print_error(f"{module} imports {imported}, which is not in the standard library")
            output.new_line()
