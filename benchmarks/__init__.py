


def write_json(path, result: dict) -> None:
    """A benchmark's measurements as JSON at ``path`` (its folder created), for ``python -m utils.report``; nothing
    when ``path`` is None."""
    import json
    from pathlib import Path

    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(result, indent=1))
