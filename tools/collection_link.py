# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make ``.build/collections/ansible_collections/blockwise/ebs`` point at this checkout.

With ``ANSIBLE_COLLECTIONS_PATH=.build/collections`` (the Makefile exports it), ansible-playbook,
ansible-doc, ansible-lint, molecule and the tests all see the live tree as ``blockwise.ebs``.
"""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS_ROOT = ROOT / ".build" / "collections"


def ensure_collection_link():
    """Create the link once (safe to call from several processes at the same time)."""
    link = COLLECTIONS_ROOT / "ansible_collections" / "blockwise" / "ebs"
    if link.is_symlink() and link.resolve() == ROOT:
        return COLLECTIONS_ROOT
    link.parent.mkdir(parents=True, exist_ok=True)
    try:
        if link.is_symlink():
            link.unlink()
        os.symlink(ROOT, link)
    except FileExistsError:  # another process made it first
        pass
    return COLLECTIONS_ROOT


if __name__ == "__main__":
    ensure_collection_link()
