# -*- coding: utf-8 -*-
# Copyright: Contributors to the blockwise.ebs collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the restore_drill role: the drill's report and its Markdown (logic in module_utils/drill.py)."""
from __future__ import annotations

from datetime import datetime, timezone

from ansible_collections.blockwise.ebs.plugins.module_utils import drill


def drill_report(items, check_mode=False, errors=None):
    """``items``: [{region, point, verification}]; ``errors``: texts of what failed outside any volume."""
    return drill.drill_report(list(items or []), datetime.now(timezone.utc), check_mode=check_mode, errors=errors)


def drill_markdown(report):
    return drill.drill_markdown(report)


class FilterModule(object):
    def filters(self):
        return {"drill_report": drill_report, "drill_markdown": drill_markdown}
