# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Speed-ups of moto internals that leave the endpoint's answers unchanged."""


def index_moto_tag_lookups():
    """Make moto's per-resource tag lookup O(1).

    moto answers "the tags of resource X" (asked once per item of every Describe* answer) by scanning
    every tag of the region with regular expressions, which is quadratic: a DescribeSnapshots answer of
    30,000 snapshots would take hours. The single-resource case is answered from moto's own dict, in
    the same order; every other query still goes through moto's code. Safe to call more than once.
    """
    from moto.ec2.models.tags import TagBackend  # pylint: disable=import-outside-toplevel
    from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix  # pylint: disable=import-outside-toplevel

    original = TagBackend.describe_tags
    if getattr(original, "indexed", False):
        return

    def describe_tags(self, filters=None):
        ids = (filters or {}).get("resource-id") or ()
        if filters and set(filters) == {"resource-id"} and len(ids) == 1 and not any(c in ids[0] for c in "*?\\"):
            resource_id = ids[0]
            kind = EC2_PREFIX_TO_RESOURCE.get(get_prefix(resource_id), "")
            return [{"resource_id": resource_id, "key": key, "value": value, "resource_type": kind}
                    for key, value in dict(self.tags.get(resource_id) or {}).items()]
        return original(self, filters)

    describe_tags.indexed = True
    TagBackend.describe_tags = describe_tags
