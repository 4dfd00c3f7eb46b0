"""Stop the set-up early, with the supported versions named, when the interpreter is not supported.

Kept free of modern syntax on purpose: it has to run, and say something useful, on the old interpreters it rejects.
"""

import sys

SUPPORTED = ((3, 10), (3, 12))  # inclusive; CI runs 3.11


def main():
    low, high = SUPPORTED
    found = sys.version_info[:2]
    if low <= found <= high:
        return 0
    sys.stderr.write(
        "error: vssm supports Python %d.%d to %d.%d (CI: 3.11); %s is Python %d.%d.\n"
        "       Point the set-up at a supported interpreter, e.g. `make test PYTHON=python3.11`.\n"
        % (low[0], low[1], high[0], high[1], sys.executable, found[0], found[1])
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
