"""Print how long each page took to execute in the last `make book` (from the execution cache).

Usage: .venv/bin/python benchmarks/build_times.py   (after `make clean && make book` for fresh numbers)
Pages taken from the cache in that build show the time of the build that executed them.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from jupyter_cache import get_cache

    cache = get_cache(ROOT / "_build" / ".jupyter_cache")
    rows = sorted((Path(r.uri).relative_to(ROOT).as_posix(), r.data.get("execution_seconds", float("nan")))
                  for r in cache.list_cache_records())
    print("execution time of each page at build time (s):")
    for name, seconds in rows:
        print(f"  {name:<50} {seconds:6.1f}")
    print(f"  {'total':<50} {sum(s for _, s in rows):6.1f}")


if __name__ == "__main__":
    main()
