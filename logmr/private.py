"""Files that hold personal data (client IPs, user agents) or a secret: their owner alone
may read them.

Folders are 0700 and files 0600, whatever the umask. A data dir or spool found open to
others (made by an older logmr, or by hand) is closed, with one warning that says what
was changed, the way PostgreSQL guards its data directory.
"""

from __future__ import annotations

import logging
import os
import stat

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_dir(path: str) -> None:
    """Create ``path`` (its parents as the umask says) as a private folder."""
    os.makedirs(path, mode=DIR_MODE, exist_ok=True)
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        os.chmod(path, mode & ~0o077 | DIR_MODE)


def open_file(path: str, flags: int) -> int:
    """``os.open`` for a file that is created private (an existing file keeps its mode)."""
    return os.open(path, flags, FILE_MODE)


def close_tree(root: str, what: str) -> int:
    """Take every permission of group and others off ``root`` and all it holds; warn once
    when something was open. Returns how many paths were changed."""
    changed = []
    for folder, dirs, files in os.walk(root):
        for path in [folder, *(os.path.join(folder, n) for n in files)]:
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(st.st_mode) or not stat.S_IMODE(st.st_mode) & 0o077:
                continue
            os.chmod(path, stat.S_IMODE(st.st_mode) & ~0o077)
            changed.append(path)
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
    if changed:
        log.warning("%s %s was open to other users (%d paths, %s first); closed them to its "
                    "owner alone: it holds personal data", what, root, len(changed), changed[0])
    return len(changed)


def open_to_others(path: str) -> bool:
    """True when users other than the owner may read ``path``."""
    return bool(stat.S_IMODE(os.stat(path).st_mode) & 0o044)
