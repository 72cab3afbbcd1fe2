"""Check real responses against the app's own OpenAPI document (JSON Schema 2020-12, formats checked)."""

from __future__ import annotations

import re

import jsonschema


class OpenAPIChecker:
    """Validate (method, path, status, JSON body) against the operation the document describes for it."""

    def __init__(self, document: dict) -> None:
        self.document = document
        self.templates = [
            (re.compile("^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(path)) + "$"), path)
            for path in document["paths"]
        ]

    def operation(self, method: str, path: str) -> tuple[str, dict] | None:
        for pattern, template in self.templates:
            if pattern.match(path):
                operation = self.document["paths"][template].get(method.lower())
                if operation is not None:
                    return template, operation
        return None

    def problems(self, method: str, path: str, status: int, body, content_type: str | None) -> list[str]:
        """Say how a response differs from its description ([] when it matches)."""
        path = path.split("?")[0]
        found = self.operation(method, path)
        if found is None:
            return [f"{method} {path} is not described"]
        template, operation = found
        response = operation["responses"].get(str(status))
        if response is None:
            return [f"{method} {template}: status {status} is not documented ({', '.join(operation['responses'])})"]
        content = response.get("content", {})
        if not content:
            return []
        if "application/json" in content and not (content_type or "").startswith("application/json"):
            return [f"{method} {template} {status}: content type {content_type}, documented application/json"]
        schema = content.get("application/json", {}).get("schema")
        if schema is None:
            return []
        root = {**schema, "components": self.document["components"]}
        validator = jsonschema.Draft202012Validator(root, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
        return [
            f"{method} {template} {status}: {'/'.join(map(str, e.absolute_path))}: {e.message[:200]}"
            for e in validator.iter_errors(body)
        ][:5]
