# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""MaxResults / NextToken paging of DescribeSnapshots and DescribeVolumes, as the EC2 API reference describes it.

moto answers every item in one page whatever ``MaxResults`` says; AWS pages. From the API reference:
DescribeSnapshots "MaxResults: The maximum number of snapshots to return for this request. This value can be
between 5 and 1,000; if this value is larger than 1,000, only 1,000 results are returned. If this parameter is
not used, then the request returns all snapshots. You cannot specify this parameter and the snapshot IDs
parameter in the same request." DescribeVolumes: "Valid range: Minimum value of 5. Maximum value of 500"
(larger values: 500), and likewise not with volume IDs. Without ``MaxResults`` every item is answered.
"""

import base64
import json

from .ec2_common import Ec2Error

LIMITS = {"DescribeSnapshots": ("SnapshotId", 1000), "DescribeVolumes": ("VolumeId", 500)}


def page_request(action, form):
    """``(size, offset)`` when the request asks for a page, else None; refuses what EC2 refuses."""
    if "MaxResults" not in form:
        if form.get("NextToken"):
            return 1000, _offset(form["NextToken"], action)
        return None
    id_name, largest = LIMITS[action]
    if any(key.startswith(id_name + ".") for key in form):
        raise Ec2Error("InvalidParameterCombination", f"The parameter {id_name}s cannot be used with the parameter maxResults")
    try:
        size = int(form["MaxResults"])
    except ValueError as exc:
        raise Ec2Error("InvalidParameterValue", f"Invalid value '{form['MaxResults']}' for maxResults") from exc
    if size < 5:
        raise Ec2Error("InvalidParameterValue", f"Value ( {size} ) for parameter maxResults is invalid. Expecting a value greater than 5.")
    return min(size, largest), _offset(form.get("NextToken"), action)


def _offset(token, action):
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
        assert data["action"] == action
        return int(data["offset"])
    except (ValueError, KeyError, AssertionError) as exc:
        raise Ec2Error("InvalidParameterValue", f"The token '{token}' is invalid.") from exc


def page(items, action, request):
    """``(items of this page, NextToken or None)``."""
    size, offset = request
    chunk = items[offset:offset + size]
    if offset + size >= len(items):
        return chunk, None
    token = base64.urlsafe_b64encode(json.dumps({"action": action, "offset": offset + size}).encode()).decode()
    return chunk, token
