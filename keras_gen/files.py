"""Writing files so that a failure never leaves a half-written one."""

import contextlib
import os
import tempfile


def give_default_permissions(path, directory=False):
    """chmod a mkstemp/mkdtemp path (0600/0700) to what open()/mkdir() would have made under the umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if directory else 0o666) & ~umask)


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; renames it onto `path` only on success."""
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    stem, suffix = os.path.splitext(os.path.basename(path))
    handle, temporary = tempfile.mkstemp(
        prefix=f".{stem}.partial-", suffix=suffix, dir=os.path.dirname(path)
    )
    os.close(handle)
    give_default_permissions(temporary)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
