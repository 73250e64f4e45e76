# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A local AWS endpoint for tests and demos: moto plus a fidelity layer for the EBS direct APIs.

``LocalAWS`` runs the endpoint in this process; ``LocalAWSControl`` drives the control API of an
endpoint running anywhere (e.g. ``python -m tests.localaws serve``); ``account_credentials(id)`` gives
boto3 credentials that act as another AWS account.
"""

import os

# moto reads this when a region's EC2 backend is first built: without it every region preloads
# thousands of public AMIs and their snapshots.
os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = "false"

from .client import LocalAWSControl, LocalAWSControlError, account_credentials  # noqa: E402  pylint: disable=wrong-import-position
from .server import LocalAWS  # noqa: E402  pylint: disable=wrong-import-position

__all__ = ["LocalAWS", "LocalAWSControl", "LocalAWSControlError", "account_credentials"]
