# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test session set-up shared by unit, local-endpoint and functional tests.

The collection is imported as ``ansible_collections.blockwise.ebs`` through a link under
``.build/collections`` that points at this checkout, so tests always see the live tree.
"""
import sys

from tools.collection_link import COLLECTIONS_ROOT, ROOT, ensure_collection_link

ensure_collection_link()
for path in (str(COLLECTIONS_ROOT), str(ROOT)):
    if path not in sys.path:
        sys.path.insert(0, path)

pytest_plugins = ["tests.localaws.fixtures"]
